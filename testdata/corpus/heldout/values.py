"""Fake values in real formats for the held-out corpora. Nothing here is a real
credential or a real person's data: every value is drawn from a seeded RNG."""

import base64
import json
import random
import string

ALNUM = string.ascii_letters + string.digits
UP_ALNUM = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"


class V:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def s(self, alphabet, n):
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def pick(self, xs):
        return self.r.choice(xs)

    # ---- identity data -------------------------------------------------
    FIRST = ["Sofia", "Mateo", "Aiko", "Wei", "Priya", "Oluwaseun", "Lars", "Chloé", "Dmitri", "Fatima",
             "Kenji", "Ana", "Hamid", "Ingrid", "Rahul", "Mei", "Tomás", "Zeynep", "Nguyen", "Siddharth",
             "Yuki", "Carmen", "Björn", "Amara", "Jae-won", "Leila", "Pedro", "Olga", "Kwame", "Aditi"]
    LAST = ["Kowalski", "Haddad", "Tanaka", "Okafor", "Lindqvist", "Moreau", "Ivanova", "Rossi", "Gupta",
            "Zhang", "Fernández", "Yılmaz", "Park", "Nakamura", "Silva", "Müller", "Mensah", "Costa",
            "Rahman", "Novak", "Dubois", "Sato", "Barros", "Khan", "Schulz", "Andersen", "Tran", "Das"]
    DOMAINS = ["northwind-logistics.com", "acme-retail.de", "mail.kobe-seiki.co.jp", "globex.com.br",
               "fabrikam.fr", "contoso.io", "tiendaluna.mx", "hooli.in", "uni-stuttgart.example.de",
               "sbk-bank.ru", "initrode.co.uk", "example.org", "yandex.ru", "gmail.com", "outlook.com",
               "proton.me", "qq.com", "naver.com", "web.de", "libero.it", "orange.fr", "163.com",
               "engineering.wayfarer.travel", "support.pixelforge.games"]

    def person(self):
        return self.pick(self.FIRST), self.pick(self.LAST)

    def email(self):
        f, l = self.person()
        f = f.lower().translate(str.maketrans("éçñöüı-", "ecnouia")).replace(" ", "")
        l = l.lower().translate(str.maketrans("éçñöüıá", "ecnouia"))
        form = self.r.randrange(7)
        local = [f"{f}.{l}", f"{f[0]}{l}", f"{l}_{f}", f"{f}+billing", f"{f}.{l}{self.r.randrange(10, 99)}",
                 f"{l}-{f[0]}", f"ops-{self.s(string.ascii_lowercase, 4)}"][form]
        return f"{local}@{self.pick(self.DOMAINS)}"

    def phone(self):
        """International and national numbers in the forms people type."""
        r = self.r
        d = lambda n: self.s(string.digits, n)
        area = str(r.randrange(201, 990))
        if area[1:] == "11":
            area = "415"
        forms = [
            f"({area}) 555.{d(4)}",
            f"({area}) {r.randrange(200, 999)}-{d(4)}",
            f"{area}.{r.randrange(200, 999)}.{d(4)}",
            f"+1 {area} {r.randrange(200, 999)} {d(4)}",
            f"+1-{area}-{r.randrange(200, 999)}-{d(4)}",
            f"+44 20 7{d(3)} {d(4)}",
            f"+44 7{d(3)} {d(6)}",
            f"+49 30 {d(4)} {d(4)}",
            f"+49 (0)89 {d(3)} {d(4)}",
            f"+33 1 {d(2)} {d(2)} {d(2)} {d(2)}",
            f"+33 6 {d(2)} {d(2)} {d(2)} {d(2)}",
            f"+81 3-{d(4)}-{d(4)}",
            f"+81 90-{d(4)}-{d(4)}",
            f"+55 11 9{d(4)}-{d(4)}",
            f"+91 9{d(4)} {d(5)}",
            f"+86 138 {d(4)} {d(4)}",
            f"+7 495 {d(3)}-{d(2)}-{d(2)}",
            f"+34 6{d(2)} {d(3)} {d(3)}",
            f"+39 02 {d(4)} {d(4)}",
            f"+82 10-{d(4)}-{d(4)}",
            f"+971 4 {d(3)} {d(4)}",
            f"+52 55 {d(4)} {d(4)}",
            f"+31 20 {d(3)} {d(4)}",
            f"+90 212 {d(3)} {d(2)} {d(2)}",
            f"+62 21 {d(4)} {d(4)}",
            f"+880 17{d(2)}-{d(6)}",
            f"+92 300 {d(7)}",
            f"+20 10 {d(4)} {d(4)}",
            f"0{r.randrange(20, 99)} {d(4)} {d(4)}",
            f"+61 2 {d(4)} {d(4)}",
        ]
        return self.pick(forms)

    def luhn_digits(self, prefix, length):
        ds = [int(c) for c in prefix] + [self.r.randrange(10) for _ in range(length - len(prefix) - 1)]
        for check in range(10):
            t = ds + [check]
            s = 0
            for i, x in enumerate(reversed(t)):
                if i % 2 == 1:
                    x *= 2
                    if x > 9:
                        x -= 9
                s += x
            if s % 10 == 0:
                return "".join(map(str, t))
        raise AssertionError

    def card_raw(self):
        kind = self.r.randrange(4)
        if kind == 0:
            return self.luhn_digits("4", 16)
        if kind == 1:
            return self.luhn_digits(self.pick(["51", "53", "55", "2221", "2720"]), 16)
        if kind == 2:
            return self.luhn_digits(self.pick(["34", "37"]), 15)
        return self.luhn_digits(self.pick(["6011", "65"]), 16)

    def card(self, seps=(" ", "-", "", " ", "-", ".", "\u00a0", "_")):
        raw = self.card_raw()
        sep = self.pick(list(seps))
        if len(raw) == 15:
            return sep.join([raw[:4], raw[4:10], raw[10:]])
        return sep.join(raw[i:i + 4] for i in range(0, 16, 4))

    def card_invalid(self):
        raw = self.card_raw()
        last = (int(raw[-1]) + self.r.randrange(1, 10)) % 10
        return raw[:-1] + str(last)

    IBAN_BBAN = {  # country: (length of BBAN, generator spec: n digits / a letters)
        "DE": "18n", "FR": "10n11c2n", "GB": "4a14n", "ES": "20n", "IT": "1a10n12c", "NL": "4a10n",
        "CH": "5n12c", "PL": "24n", "BE": "12n", "AT": "16n", "SA": "2n18c", "AE": "19n", "TR": "5n1n16c",
        "BR": "23n1a1c", "PT": "21n", "SE": "20n", "NO": "11n", "DK": "14n", "IE": "4a14n", "FI": "14n",
    }

    def _bban(self, spec):
        out = []
        num = ""
        for ch in spec:
            if ch.isdigit():
                num += ch
                continue
            n = int(num)
            num = ""
            alpha = {"n": string.digits, "a": string.ascii_uppercase, "c": UP_ALNUM}[ch]
            out.append(self.s(alpha, n))
        return "".join(out)

    def iban(self, grouped=None):
        cc = self.pick(list(self.IBAN_BBAN))
        bban = self._bban(self.IBAN_BBAN[cc])
        rearr = bban + cc + "00"
        num = "".join(str(int(c, 36)) for c in rearr)
        check = 98 - int(num) % 97
        iban = f"{cc}{check:02d}{bban}"
        if grouped is None:
            grouped = self.r.random() < 0.5
        if grouped:
            return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))
        return iban

    def iban_invalid(self):
        i = self.iban(grouped=False)
        # change one digit of the BBAN: mod-97 catches every single-digit change
        pos = len(i) - 1
        d = (int(i[pos]) + 1) % 10 if i[pos].isdigit() else 1
        return i[:pos] + str(d)

    def ssn_parts(self):
        while True:
            a = self.r.randrange(1, 900)
            if a != 666:
                break
        return f"{a:03d}", f"{self.r.randrange(1, 100):02d}", f"{self.r.randrange(1, 10000):04d}"

    def ssn(self, sep="-"):
        return sep.join(self.ssn_parts())

    def ipv4(self):
        r = self.r
        forms = [
            lambda: f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}",
            lambda: f"192.168.{r.randrange(256)}.{r.randrange(1, 255)}",
            lambda: f"172.{r.randrange(16, 32)}.{r.randrange(256)}.{r.randrange(1, 255)}",
            lambda: f"{r.randrange(1, 224)}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}",
            lambda: f"203.0.113.{r.randrange(1, 255)}",
            lambda: "127.0.0.1",
        ]
        return self.pick(forms)()

    def ipv6(self):
        r = self.r
        h = lambda: format(r.randrange(1, 0x10000), "x")
        forms = [
            lambda: f"2001:db8:{h()}:{h()}::{h()}",
            lambda: f"fe80::{h()}:{h()}:{h()}:{h()}",
            lambda: ":".join(h() for _ in range(8)),
            lambda: f"2a02:{h()}:{h()}:{h()}:{h()}:{h()}:{h()}:{h()}",
            lambda: f"fd00:{h()}::{h()}",
            lambda: "::1",
        ]
        return self.pick(forms)()

    # ---- secrets -----------------------------------------------------------
    def aws_access(self):
        return self.pick(["AKIA", "ASIA"]) + self.s(string.ascii_uppercase + "234567", 16)

    def aws_secret(self):
        return self.s(B64, 40)

    def github(self):
        if self.r.random() < 0.25:
            return "github_pat_" + self.s(UP_ALNUM, 22) + "_" + self.s(ALNUM, 59)
        return self.pick(["ghp_", "gho_", "ghs_", "ghu_"]) + self.s(ALNUM, 36)

    def gitlab(self):
        return "glpat-" + self.s(ALNUM + "-_", 20)

    def slack_token(self):
        if self.r.random() < 0.5:
            return f"xoxb-{self.s(string.digits, 12)}-{self.s(string.digits, 13)}-{self.s(ALNUM, 24)}"
        return f"xoxp-{self.s(string.digits, 12)}-{self.s(string.digits, 12)}-{self.s(string.digits, 13)}-{self.s(HEX, 32)}"

    def slack_webhook(self):
        return f"https://hooks.slack.com/services/T{self.s(UP_ALNUM, 10)}/B{self.s(UP_ALNUM, 10)}/{self.s(ALNUM, 24)}"

    def stripe(self):
        return self.pick(["sk_live_", "rk_live_"]) + self.s(ALNUM, self.pick([24, 34, 99]))

    def openai(self):
        if self.r.random() < 0.5:
            return "sk-proj-" + self.s(ALNUM + "-_", 74) + "T3BlbkFJ" + self.s(ALNUM + "-_", 74)
        return "sk-" + self.s(ALNUM, 20) + "T3BlbkFJ" + self.s(ALNUM, 20)

    def anthropic(self):
        return "sk-ant-api03-" + self.s(ALNUM + "-_", 93) + "AA"

    def google(self):
        return "AIza" + self.s(ALNUM + "-_", 35)

    def jwt(self):
        hdr = base64.urlsafe_b64encode(json.dumps({"alg": self.pick(["HS256", "RS256", "ES256"]), "typ": "JWT"}).encode()).rstrip(b"=").decode()
        body = base64.urlsafe_b64encode(json.dumps({"sub": self.s(string.digits, 8), "iat": self.r.randrange(1600000000, 1800000000), "scope": self.pick(["read", "admin", "billing:write"])}).encode()).rstrip(b"=").decode()
        return f"{hdr}.{body}.{self.s(B64URL, 43)}"

    def pem(self, sep="\n"):
        kind = self.r.randrange(6)
        if kind == 0:  # short Ed25519 PKCS#8
            label, body = "PRIVATE KEY", base64.b64encode(bytes.fromhex("302e020100300506032b657004220420") + self.r.randbytes(32)).decode()
        elif kind == 1:  # X25519 PKCS#8
            label, body = "PRIVATE KEY", base64.b64encode(bytes.fromhex("302e020100300506032b656e04220420") + self.r.randbytes(32)).decode()
        elif kind == 2:
            label, body = "EC PRIVATE KEY", base64.b64encode(bytes.fromhex("30770201010420") + self.r.randbytes(114)).decode()
        elif kind == 3:
            label, body = "RSA PRIVATE KEY", base64.b64encode(bytes.fromhex("308204a40201000282010100") + self.r.randbytes(600)).decode()
        elif kind == 4:
            label, body = "OPENSSH PRIVATE KEY", base64.b64encode(b"openssh-key-v1\x00" + self.r.randbytes(300)).decode()
        else:
            label, body = "ENCRYPTED PRIVATE KEY", base64.b64encode(bytes.fromhex("308201") + self.r.randbytes(250)).decode()
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        return sep.join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"])

    def password(self):
        forms = [
            lambda: self.s(ALNUM + "!#%&*?@^", self.r.randrange(10, 22)),
            lambda: self.pick(["Tr0mb0ne", "Quokka", "Salamandra", "Kirschbaum", "Papillon", "Girasol"]) + self.s(string.digits, 3) + self.pick("!?#$%"),
            lambda: self.s(ALNUM, 16),
            lambda: "-".join(self.pick(["lamp", "orbit", "cedar", "nickel", "harbor", "violet", "tundra", "mango"]) for _ in range(3)) + self.s(string.digits, 2),
        ]
        return self.pick(forms)()

    def api_key(self):
        forms = [
            lambda: self.s(HEX, 32),
            lambda: self.s(ALNUM, 32),
            lambda: self.s(ALNUM, 40),
            lambda: "key-" + self.s(HEX, 32),
            lambda: self.s(ALNUM + "-_", 48),
            lambda: "live_" + self.s(ALNUM, 30),
        ]
        return self.pick(forms)()

    def npm(self):
        return "npm_" + self.s(ALNUM, 36)

    def twilio(self):
        return "SK" + self.s(HEX, 32)

    def sendgrid(self):
        return "SG." + self.s(ALNUM + "-_", 22) + "." + self.s(ALNUM + "-_", 43)

    # ---- look-alikes (never labelled) -----------------------------------
    def uuid(self):
        h = self.s(HEX, 32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def sha(self, n=40):
        return self.s(HEX, n)

    def decoy(self):
        r = self.r
        forms = [
            lambda: self.uuid(),
            lambda: self.sha(40),
            lambda: "sha256:" + self.sha(64),
            lambda: f"v{r.randrange(0, 9)}.{r.randrange(0, 30)}.{r.randrange(0, 99)}",
            lambda: f"build {r.randrange(2019, 2027)}.{r.randrange(1, 13)}.{r.randrange(1, 29)}-rc{r.randrange(1, 9)}",
            lambda: f"order #{r.randrange(10**8, 10**9)}",
            lambda: f"invoice FA-{r.randrange(2020, 2027)}/{r.randrange(1000, 99999)}",
            lambda: f"ts={r.randrange(1_600_000_000_000, 1_800_000_000_000)}",
            lambda: f"{r.randrange(2020, 2027)}-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}T{r.randrange(24):02d}:{r.randrange(60):02d}:{r.randrange(60):02d}Z",
            lambda: ":".join(self.s("0123456789ABCDEF", 2) for _ in range(6)),
            lambda: f"€{r.randrange(1, 99)}.{r.randrange(100, 999)},{r.randrange(10, 99)}",
            lambda: f"{r.randrange(1000, 99999)} tokens",
            lambda: "**** **** **** " + self.s(string.digits, 4),
            lambda: "XXX-XX-" + self.s(string.digits, 4),
            lambda: self.card_invalid(),
            lambda: self.iban_invalid(),
            lambda: "AKIAIOSFODNN7EXAMPLE",
            lambda: "pk_live_" + self.s(ALNUM, 24),
            lambda: "pk_test_" + self.s(ALNUM, 24),
            lambda: "${STRIPE_SECRET_KEY}",
            lambda: "{{ secrets.DEPLOY_TOKEN }}",
            lambda: "<redacted>",
            lambda: "sk-learn",
            lambda: "ghp_" + "x" * 36,
            lambda: f"port {r.randrange(1024, 65535)}",
            lambda: f"req_{self.s(ALNUM, 14)}",
            lambda: f"cus_{self.s(ALNUM, 14)}",
            lambda: f"PR #{r.randrange(100, 9999)}",
            lambda: f"ISBN 978-{r.randrange(0, 9)}-{r.randrange(100, 999)}-{r.randrange(10000, 99999)}-{r.randrange(0, 9)}",
            lambda: f"tracking 1Z{self.s(UP_ALNUM, 16)}",
            lambda: f"{r.randrange(100, 999)}.{r.randrange(100, 999)} km",
            lambda: f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{self.s(B64, 43)} deploy@ci",
            lambda: f"SHA256:{self.s(B64, 43)}",
        ]
        return self.pick(forms)()
