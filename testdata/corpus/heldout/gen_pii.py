"""Writes ../pii-secrets.heldout.jsonl: realistic tool outputs with labelled PII and
secrets, in the record format of testdata/corpus/README.md. Run: python3 gen_pii.py"""

import hashlib
import json
import os
import urllib.parse

from values import V

N = 480


class B:
    """Builds a text and the byte ranges of labelled values in it."""

    def __init__(self):
        self.parts, self.n, self.spans = [], 0, []

    def t(self, s):
        self.parts.append(s)
        self.n += len(s.encode())
        return self

    def v(self, s, cat):
        b = len(s.encode())
        self.spans.append({"category": cat, "start": self.n, "end": self.n + b})
        return self.t(s)

    def text(self):
        return "".join(self.parts)


# A labelled value inside a structure that is serialised later.
class L:
    def __init__(self, value, cat):
        self.value, self.cat = value, cat


def emit_json(b, obj, indent=2, level=0):
    pad = " " * (indent * (level + 1))
    end = " " * (indent * level)
    if isinstance(obj, dict):
        if not obj:
            b.t("{}")
            return
        b.t("{\n")
        for i, (k, val) in enumerate(obj.items()):
            b.t(pad + json.dumps(k, ensure_ascii=False) + ": ")
            emit_json(b, val, indent, level + 1)
            b.t(",\n" if i < len(obj) - 1 else "\n")
        b.t(end + "}")
    elif isinstance(obj, list):
        b.t("[\n")
        for i, val in enumerate(obj):
            b.t(pad)
            emit_json(b, val, indent, level + 1)
            b.t(",\n" if i < len(obj) - 1 else "\n")
        b.t(end + "]")
    elif isinstance(obj, L):
        b.t('"')
        b.v(json.dumps(obj.value, ensure_ascii=False)[1:-1], obj.cat)
        b.t('"')
    else:
        b.t(json.dumps(obj, ensure_ascii=False))


# Phrases per language: (chat filler, email label, phone label, password phrase, IBAN phrase)
LANG = {
    "en": (["Thanks, I'll pick this up after standup.", "The vendor confirmed the fix is rolling out tonight.", "Can you double-check the totals before Friday?"], "Email", "Phone", "the password is", "Please wire the deposit to"),
    "es": (["Gracias, lo reviso después de la reunión.", "El proveedor confirmó que el arreglo sale esta noche.", "¿Puedes revisar los totales antes del viernes?"], "Correo", "Teléfono", "la contraseña es", "Por favor transfiere el anticipo a la cuenta"),
    "fr": (["Merci, je m'en occupe après le point quotidien.", "Le fournisseur confirme le correctif ce soir.", "Tu peux vérifier les totaux avant vendredi ?"], "Courriel", "Tél.", "le mot de passe est", "Merci de virer l'acompte sur l'IBAN"),
    "de": (["Danke, ich schaue es mir nach dem Daily an.", "Der Dienstleister hat den Fix für heute Abend bestätigt.", "Kannst du die Summen vor Freitag prüfen?"], "E-Mail", "Telefon", "das Passwort lautet", "Bitte überweise die Anzahlung auf"),
    "pt": (["Obrigado, vejo isso depois da daily.", "O fornecedor confirmou a correção para hoje à noite.", "Pode conferir os totais antes de sexta?"], "E-mail", "Telefone", "a senha é", "Favor transferir o sinal para o IBAN"),
    "it": (["Grazie, ci guardo dopo lo stand-up.", "Il fornitore ha confermato la correzione per stasera.", "Puoi ricontrollare i totali prima di venerdì?"], "Email", "Tel.", "la password è", "Si prega di bonificare l'acconto sull'IBAN"),
    "zh": (["好的，我开完站会就处理。", "供应商确认今晚发布修复。", "周五之前能再核对一下总额吗？"], "邮箱", "电话", "密码是", "请将定金汇至"),
    "ja": (["了解です、朝会のあとで対応します。", "ベンダーから今夜修正をリリースすると連絡がありました。", "金曜までに合計を再確認してもらえますか？"], "メール", "電話", "パスワードは", "手付金は次の口座へお振込みください"),
    "ru": (["Спасибо, займусь после планёрки.", "Поставщик подтвердил исправление сегодня вечером.", "Можешь перепроверить суммы до пятницы?"], "Почта", "Тел.", "пароль", "Пожалуйста, переведите аванс на IBAN"),
    "ar": (["شكرًا، سأتابع الأمر بعد الاجتماع.", "أكد المورد أن الإصلاح سيصدر الليلة.", "هل يمكنك مراجعة المجاميع قبل الجمعة؟"], "البريد", "الهاتف", "كلمة المرور هي", "يرجى تحويل الدفعة المقدمة إلى"),
    "hi": (["धन्यवाद, मैं स्टैंडअप के बाद देखता हूँ।", "विक्रेता ने आज रात फ़िक्स की पुष्टि की है।", "क्या आप शुक्रवार से पहले कुल राशि जाँच सकते हैं?"], "ईमेल", "फ़ोन", "पासवर्ड है", "कृपया अग्रिम राशि इस IBAN पर भेजें"),
    "ko": (["감사합니다, 스탠드업 후에 확인할게요.", "업체에서 오늘 밤 수정 배포를 확인했습니다.", "금요일 전에 합계를 다시 확인해 주실 수 있나요?"], "이메일", "전화", "비밀번호는", "계약금은 다음 계좌로 송금해 주세요"),
    "tr": (["Teşekkürler, toplantıdan sonra bakarım.", "Tedarikçi düzeltmenin bu gece çıkacağını onayladı.", "Cuma'dan önce toplamları kontrol edebilir misin?"], "E-posta", "Telefon", "şifre", "Lütfen kaparoyu şu IBAN'a gönderin"),
    "id": (["Terima kasih, saya cek setelah standup.", "Vendor sudah konfirmasi perbaikan rilis malam ini.", "Bisa cek ulang totalnya sebelum Jumat?"], "Email", "Telepon", "kata sandinya", "Mohon transfer uang muka ke IBAN"),
    "nl": (["Dank je, ik pak het na de stand-up op.", "De leverancier bevestigt de fix voor vanavond.", "Kun je de totalen vóór vrijdag controleren?"], "E-mail", "Tel.", "het wachtwoord is", "Maak de aanbetaling over naar"),
    "pl": (["Dzięki, zajmę się tym po spotkaniu.", "Dostawca potwierdził poprawkę na dziś wieczór.", "Możesz sprawdzić sumy przed piątkiem?"], "E-mail", "Tel.", "hasło to", "Proszę przelać zaliczkę na IBAN"),
    "vi": (["Cảm ơn, mình sẽ xem sau buổi họp.", "Nhà cung cấp xác nhận bản sửa tối nay.", "Bạn kiểm tra lại tổng trước thứ Sáu được không?"], "Email", "Điện thoại", "mật khẩu là", "Vui lòng chuyển tiền đặt cọc vào IBAN"),
}


def rec_log(v, b):
    """Application and access logs: logfmt, JSON lines, nginx, syslog."""
    for _ in range(v.r.randrange(4, 9)):
        ts = f"2026-{v.r.randrange(1, 13):02d}-{v.r.randrange(1, 29):02d}T{v.r.randrange(24):02d}:{v.r.randrange(60):02d}:{v.r.randrange(60):02d}.{v.r.randrange(1000):03d}Z"
        k = v.r.randrange(11)
        if k == 0:
            b.t(f"{ts} level=info msg=\"login ok\" user=").v(v.email(), "email").t(" ip=").v(v.ipv4(), "ipv4").t(f" req={v.uuid()}\n")
        elif k == 1:
            b.t('{"ts":"' + ts + '","level":"warn","event":"retry","peer":"').v(v.ipv6(), "ipv6").t(f'","attempt":{v.r.randrange(1, 6)},"trace":"{v.sha(32)}"}}\n')
        elif k == 2:
            b.v(v.ipv4(), "ipv4").t(f' - - [06/Dec/2026:0{v.r.randrange(10)}:12:55 +0000] "GET /v2/export?format=csv&api_key=').v(v.api_key(), "generic_api_key").t(f' HTTP/1.1" 200 {v.r.randrange(200, 90000)} "-" "python-requests/2.32.3"\n')
        elif k == 3:
            b.t(f"{ts} ERROR db: dial failed dsn=").t("postgres://svc_orders:").v(urlpw(v), "db_url_password").t(f"@pg-{v.r.randrange(1, 9)}.internal:5432/orders?sslmode=require: connection refused\n")
        elif k == 4:
            b.t(f"{ts} DEBUG http: > Authorization: Bearer ").v(v.jwt(), "jwt").t("\n")
        elif k == 5:
            e = v.email()
            b.t(f"{ts} INFO webhook: POST /hooks/signup body=email=").v(urllib.parse.quote(e, safe=""), "email").t("&plan=pro&ref=newsletter\n")
        elif k == 6:
            b.t(f"Dec  6 0{v.r.randrange(10)}:4{v.r.randrange(10)}:1{v.r.randrange(10)} bastion sshd[{v.r.randrange(1000, 65000)}]: Accepted publickey for deploy from ").v(v.ipv4(), "ipv4").t(f" port {v.r.randrange(1024, 65535)} ssh2: ED25519 SHA256:{v.s('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/', 43)}\n")
        elif k == 7:
            b.t(f"{ts} WARN billing: card declined card=").v(v.card(), "credit_card").t(f" amount=49.00 currency=EUR {v.decoy()}\n")
        elif k == 8:
            b.t(f"{ts} INFO sms: sent OTP to ").v(v.phone(), "phone").t(f" provider=twilio sid=SM{v.sha(32)}\n")
        elif k == 9:
            b.t(f"{ts} INFO deploy: {v.decoy()} rollout complete ({v.r.randrange(2, 40)} pods) commit={v.sha()}\n")
        else:
            b.t(f"{ts} ERROR slack: post failed url=").v(v.slack_webhook(), "slack_webhook").t(" status=404 body=no_service\n")


def rec_json_api(v, b):
    """A JSON API response with customers or account objects."""
    lang = v.pick(list(LANG))
    f, l = v.person()
    customers = []
    for _ in range(v.r.randrange(1, 4)):
        c = {"id": f"cus_{v.s('abcdefghijklmnopqrstuvwxyz0123456789', 14)}", "name": f"{v.pick(V.FIRST)} {v.pick(V.LAST)}",
             "email": L(v.email(), "email"), "phone": L(v.phone(), "phone"),
             "locale": lang, "created": v.r.randrange(1_600_000_000, 1_800_000_000)}
        if v.r.random() < 0.5:
            c["payout"] = {"iban": L(v.iban(), "iban"), "holder": f"{f} {l}", "bic": v.pick(["DEUTDEFF", "BNPAFRPP", "NWBKGB2L", "INGBNL2A"])}
        if v.r.random() < 0.3:
            c["tax"] = {"type": "us_ssn", "value": L(v.ssn(v.pick(["-", "", " "])), "us_ssn")}
        if v.r.random() < 0.3:
            c["last_login_ip"] = L(v.ipv4(), "ipv4")
        if v.r.random() < 0.3:
            c["card"] = {"brand": "visa", "last4": v.s("0123456789", 4), "fingerprint": v.s("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", 16)}
        customers.append(c)
    obj = {"object": "list", "url": "/v1/customers", "has_more": v.r.random() < 0.5, "data": customers,
           "request_id": f"req_{v.s('ABCDEFGHabcdefgh0123456789', 14)}"}
    emit_json(b, obj)
    b.t("\n")


def rec_json_config(v, b):
    """Tool output that dumps a configuration object or credentials."""
    k = v.r.randrange(5)
    if k == 0:
        obj = {"AccessKey": {"UserName": f"ci-{v.s('abcdefghij', 5)}", "AccessKeyId": L(v.aws_access(), "aws_access_key"),
                             "Status": "Active", "SecretAccessKey": L(v.aws_secret(), "aws_secret_key"),
                             "CreateDate": "2026-11-30T09:14:02+00:00"}}
    elif k == 1:
        obj = {"name": "orders-api", "env": {"NODE_ENV": "production", "SENTRY_DSN": f"https://{v.sha(32)}@o{v.r.randrange(10**5, 10**6)}.ingest.sentry.io/{v.r.randrange(10**6, 10**7)}",
                                            "STRIPE_SECRET_KEY": L(v.stripe(), "stripe_key"), "OPENAI_API_KEY": L(v.openai(), "openai_key"),
                                            "DATABASE_URL": "", "FEATURE_FLAGS": "checkout_v2,dark_mode"}}
        emit_json_with_dburl(v, b, obj)
        return
    elif k == 2:
        obj = {"mcpServers": {"github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
                                         "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": L(v.github(), "github_token")}},
                              "slack": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-slack"],
                                        "env": {"SLACK_BOT_TOKEN": L(v.slack_token(), "slack_token"), "SLACK_TEAM_ID": "T" + v.s("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", 10)}},
                              "search": {"url": "https://mcp.example.net/sse", "headers": {"X-API-Key": L(v.api_key(), "generic_api_key")}}}}
    elif k == 3:
        obj = {"type": "service_account", "project_id": f"proj-{v.s('abcdefghij', 6)}-{v.r.randrange(100000, 999999)}",
               "private_key_id": v.sha(40), "private_key": L(v.pem(), "private_key"),
               "client_email": L(f"deployer@proj-{v.s('abcdefghij', 6)}.iam.gserviceaccount.com", "email"),
               "client_id": str(v.r.randrange(10**20, 10**21))}
    else:
        obj = {"providers": {"anthropic": {"api_key": L(v.anthropic(), "anthropic_key")}, "google": {"api_key": L(v.google(), "google_api_key")},
                             "sendgrid": {"key": L(v.sendgrid(), "sendgrid_key")}, "twilio": {"account_sid": "AC" + v.sha(32), "api_key_sid": L(v.twilio(), "twilio_key")}},
               "retries": 3, "timeout_ms": 15000}
    emit_json(b, obj)
    b.t("\n")


def urlpw(v):
    return "".join(c for c in v.password() if c not in "@:/?#%'\"")


def emit_json_with_dburl(v, b, obj):
    host = v.pick(["db.internal", "10.20.0.7", "mysql-primary", "cluster0.ab1cd.mongodb.net"])
    scheme = v.pick(["postgresql", "mysql", "mongodb+srv", "redis", "amqp"])
    b.t('{\n  "name": "orders-api",\n  "env": {\n    "NODE_ENV": "production",\n')
    b.t('    "STRIPE_SECRET_KEY": "').v(obj["env"]["STRIPE_SECRET_KEY"].value, "stripe_key").t('",\n')
    b.t('    "OPENAI_API_KEY": "').v(obj["env"]["OPENAI_API_KEY"].value, "openai_key").t('",\n')
    user = "" if scheme == "redis" else v.pick(["app", "orders_rw", "admin"])
    b.t(f'    "DATABASE_URL": "{scheme}://{user}:').v(urlpw(v), "db_url_password").t("@")
    if host[0].isdigit():
        b.v(host, "ipv4")
    else:
        b.t(host)
    b.t('/orders",\n    "FEATURE_FLAGS": "checkout_v2,dark_mode"\n  }\n}\n')


CSV_COLS = [
    ("email", "Email", "email"), ("phone", "Phone", "phone"), ("iban", "IBAN", "iban"),
    ("ssn", "SSN", "us_ssn"), ("card_number", "Card number", "credit_card"), ("ip", "IP address", "ipv4"),
    ("password", "Password", "password_assignment"), ("api_key", "API key", "generic_api_key"),
    ("secret", "Client secret", "generic_api_key"), ("aws_secret", "Secret access key", "aws_secret_key"),
]


def colval(v, cat, undashed_ssn):
    if cat == "email":
        return v.email()
    if cat == "phone":
        return v.phone()
    if cat == "iban":
        return v.iban()
    if cat == "us_ssn":
        return v.ssn("" if undashed_ssn else "-")
    if cat == "credit_card":
        return v.card()
    if cat == "ipv4":
        return v.ipv4()
    if cat == "password_assignment":
        return v.password().replace(",", "").replace(";", "").replace("|", "")
    if cat == "generic_api_key":
        return v.api_key()
    if cat == "aws_secret_key":
        return v.aws_secret()
    raise KeyError(cat)


def rec_table(v, b):
    """Tabular exports: CSV, semicolon CSV, TSV, Markdown; the header names the column."""
    fmt = v.pick(["csv", "csv;", "tsv", "md"])
    cols = v.r.sample(CSV_COLS, v.r.randrange(2, 5))
    use_label = v.r.random() < 0.5
    heads = ["id", "name"] + [c[1] if use_label else c[0] for c in cols] + ["created_at"]
    sep = {"csv": ",", "csv;": ";", "tsv": "\t", "md": " | "}[fmt]
    undashed = v.r.random() < 0.6

    def row(cells):
        if fmt == "md":
            b.t("| ")
        for i, (s, cat) in enumerate(cells):
            if i:
                b.t(sep)
            if cat:
                if fmt in ("csv", "csv;") and (sep in s or " " in s) and v.r.random() < 0.5:
                    b.t('"').v(s, cat).t('"')
                else:
                    b.v(s, cat)
            else:
                b.t(s)
        b.t(" |\n" if fmt == "md" else "\n")

    row([(h, None) for h in heads])
    if fmt == "md":
        b.t("|" + "|".join(["---"] * len(heads)) + "|\n")
    for i in range(v.r.randrange(3, 9)):
        cells = [(str(1000 + i), None), (f"{v.pick(V.FIRST)} {v.pick(V.LAST)}", None)]
        for c in cols:
            if c[2] in ("password_assignment",) and v.r.random() < 0.15:
                cells.append((v.pick(["********", "changeme", "(not set)", "<reset required>"]), None))
            elif c[2] == "credit_card" and v.r.random() < 0.2:
                cells.append(("**** **** **** " + v.s("0123456789", 4), None))
            else:
                val = colval(v, c[2], undashed)
                if fmt in ("csv", "csv;") and sep in val:
                    val = val.replace(sep, " ")
                cells.append((val, c[2]))
        cells.append((f"2026-0{v.r.randrange(1, 10)}-1{v.r.randrange(10)}", None))
        row(cells)


def rec_aws_console_csv(v, b):
    b.t("User name,Password,Access key ID,Secret access key,Console login link\n")
    for _ in range(v.r.randrange(1, 4)):
        b.t(f"svc-{v.s('abcdefghij', 6)},").v(v.password().replace(",", ""), "password_assignment").t(",").v(v.aws_access(), "aws_access_key").t(",").v(v.aws_secret(), "aws_secret_key").t(f",https://{v.r.randrange(10**11, 10**12)}.signin.aws.amazon.com/console\n")


def rec_email(v, b):
    lang = v.pick(list(LANG))
    filler, lab_mail, lab_phone, pw_phrase, iban_phrase = LANG[lang]
    f, l = v.person()
    b.t(f"From: {f} {l} <").v(v.email(), "email").t(">\nTo: ").v(v.email(), "email").t(f"\nSubject: Re: {v.pick(['onboarding', 'Rechnung', 'facture', 'presupuesto', '見積書', 'счёт', 'invoice'])} {v.r.randrange(1000, 9999)}\n")
    b.t(f"Message-ID: <{v.uuid()}@mail.gmail.com>\n\n")
    b.t(v.pick(filler) + "\n\n")
    k = v.r.randrange(4)
    if k == 0:
        b.t(iban_phrase + " ").v(v.iban(), "iban").t(f" (BIC {v.pick(['COBADEFFXXX', 'BBVAESMMXXX', 'SOGEFRPP'])}).\n")
    elif k == 1:
        b.t(f"{pw_phrase}: ").v(v.password(), "password_assignment").t("\n")
    elif k == 2:
        b.t("Card on file / tarjeta: ").v(v.card(), "credit_card").t(f", exp {v.r.randrange(1, 13):02d}/{v.r.randrange(27, 32)}\n")
    else:
        b.t(v.pick(filler) + f" {v.decoy()}.\n")
    b.t(f"\n--\n{f} {l}\n{lab_phone}: ").v(v.phone(), "phone").t(f"\n{lab_mail}: ").v(v.email(), "email").t("\n")
    if v.r.random() < 0.3:
        b.t("\n> On Tue, someone wrote:\n> mobile ").v(v.phone(), "phone").t("\n")


def rec_stack(v, b):
    k = v.r.randrange(3)
    if k == 0:
        b.t("Traceback (most recent call last):\n  File \"/srv/app/worker.py\", line 88, in run\n    conn = psycopg.connect(dsn)\n")
        b.t("psycopg.OperationalError: connection failed: FATAL:  password authentication failed for user \"etl\"\n")
        b.t("  dsn='postgresql://etl:").v(urlpw(v), "db_url_password").t("@")
        b.v(v.ipv4(), "ipv4").t(":5432/warehouse'\n")
        b.t(f"  locals: {{'batch_id': '{v.uuid()}', 'rows': {v.r.randrange(10, 9999)}, 'notify': '").v(v.email(), "email").t("'}\n")
    elif k == 1:
        b.t("Exception in thread \"main\" com.example.billing.GatewayException: 401 Unauthorized\n")
        b.t("\tat com.example.billing.StripeClient.charge(StripeClient.java:142)\n\tat com.example.billing.Job.run(Job.java:57)\n")
        b.t("Caused by: request headers {Authorization=Bearer ").v(v.stripe(), "stripe_key").t(f", Idempotency-Key={v.uuid()}}}\n")
    else:
        b.t(f"panic: runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x{v.sha(6)}]\n\n")
        b.t("goroutine 1 [running]:\nmain.(*Client).Do(0xc000{0}, {{0x{1}, 0x1f}})\n".format(v.sha(6), v.sha(6)))
        b.t("\t/src/client.go:77 +0x1a\nenv: GITLAB_TOKEN=").v(v.gitlab(), "gitlab_token").t(" NPM_TOKEN=").v(v.npm(), "npm_token").t(" HOME=/root\n")


def rec_config(v, b):
    k = v.r.randrange(8)
    if k == 0:  # .env
        b.t("# .env.production\nAPP_URL=https://app.example.com\nDB_HOST=").v(v.ipv4(), "ipv4").t("\nDB_PASSWORD=").v(v.password(), "password_assignment").t("\n")
        b.t("SENDGRID_API_KEY=").v(v.sendgrid(), "sendgrid_key").t("\nSESSION_SECRET=").v(v.api_key(), "generic_api_key").t("\nLOG_LEVEL=info\n")
    elif k == 1:  # ~/.aws/credentials
        b.t("[default]\naws_access_key_id = ").v(v.aws_access(), "aws_access_key").t("\naws_secret_access_key = ").v(v.aws_secret(), "aws_secret_key").t("\nregion = eu-central-1\n\n[staging]\naws_access_key_id=AKIAIOSFODNN7EXAMPLE\naws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n")
    elif k == 2:  # YAML with key on the line above
        b.t("storage:\n  s3:\n    bucket: backups-eu\n    credentials:\n      access_key_id: ").v(v.aws_access(), "aws_access_key").t("\n      secret_access_key: >-\n        ").v(v.aws_secret(), "aws_secret_key").t("\n")
        b.t("  smtp:\n    host: smtp.mailgun.org\n    user: ").v(v.email(), "email").t("\n    password: \"").v(v.password().replace('"', ''), "password_assignment").t("\"\n")
    elif k == 3:  # TOML
        b.t("[server]\nbind = \"").v(v.ipv4(), "ipv4").t(":8443\"\n\n[integrations.github]\ntoken = \"").v(v.github(), "github_token").t("\"\n\n[integrations.openai]\napi_key = \"").v(v.openai(), "openai_key").t("\"\nmodel = \"gpt-4.1-mini\"\n")
    elif k == 4:  # .npmrc / .netrc / git credentials
        b.t("//registry.npmjs.org/:_authToken=").v(v.npm(), "npm_token").t("\n@corp:registry=https://npm.corp.example/\n\n# ~/.netrc\nmachine api.heroku.com\n  login ").v(v.email(), "email").t("\n  password ").v(v.api_key(), "password_assignment").t("\n\n# ~/.git-credentials\nhttps://oauth2:").v(v.gitlab(), "gitlab_token").t("@gitlab.com\n")
    elif k == 5:  # docker-compose with YAML block PEM
        b.t("services:\n  api:\n    image: ghcr.io/acme/api:1.14.2\n    environment:\n      - REDIS_URL=redis://:").v(urlpw(v), "db_url_password").t("@redis:6379/0\n")
        b.t("      - ANTHROPIC_API_KEY=").v(v.anthropic(), "anthropic_key").t("\n    secrets:\n      tls_key: |\n")
        pem = v.pem(sep="\n        ")
        b.t("        ").v(pem, "private_key").t("\n")
    elif k == 6:  # INI
        b.t("[database]\nhost = db01.corp.local\nuser = reporting\npasswd = ").v(v.password(), "password_assignment").t("\n\n[mail]\nadmin = ").v(v.email(), "email").t("\n\n[maps]\nkey = ").v(v.google(), "google_api_key").t("\n")
    else:  # Kubernetes-ish with token and a webhook
        b.t("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: alerting\ndata:\n  SLACK_WEBHOOK_URL: \"").v(v.slack_webhook(), "slack_webhook").t("\"\n  TWILIO_API_KEY: \"").v(v.twilio(), "twilio_key").t(f"\"\n  CHECKSUM: \"{v.sha(64)}\"\n  IMAGE_DIGEST: \"sha256:{v.sha(64)}\"\n")


def rec_shell(v, b):
    b.t("$ history | tail -n 12\n")
    n = 500 + v.r.randrange(500)
    cmds = v.r.sample(range(12), v.r.randrange(4, 8))
    for c in cmds:
        n += 1
        b.t(f" {n}  ")
        if c == 0:
            b.t("export OPENAI_API_KEY=").v(v.openai(), "openai_key").t("\n")
        elif c == 1:
            b.t("mysql -h ").v(v.ipv4(), "ipv4").t(" -u root -p'").v(v.password().replace("'", ""), "password_assignment").t("' shop\n")
        elif c == 2:
            b.t("curl -s -H \"Authorization: Bearer ").v(v.slack_token(), "slack_token").t("\" https://slack.com/api/auth.test\n")
        elif c == 3:
            b.t("ssh -i ~/.ssh/id_ed25519 ubuntu@").v(v.ipv4(), "ipv4").t("\n")
        elif c == 4:
            b.t("aws configure set aws_secret_access_key ").v(v.aws_secret(), "aws_secret_key").t("\n")
        elif c == 5:
            b.t("git clone https://x-access-token:").v(v.github(), "github_token").t("@github.com/acme/infra.git\n")
        elif c == 6:
            b.t("psql \"postgresql://analyst:").v(urlpw(v), "db_url_password").t("@warehouse.internal/bi\"\n")
        elif c == 7:
            b.t("curl https://api.sendgrid.com/v3/mail/send -H 'Authorization: Bearer ").v(v.sendgrid(), "sendgrid_key").t("'\n")
        elif c == 8:
            b.t("ping6 ").v(v.ipv6(), "ipv6").t("\n")
        elif c == 9:
            b.t(f"git log --oneline -3 # {v.sha(7)} bump to {v.decoy()}\n")
        elif c == 10:
            b.t("docker login -u deploy --password ").v(v.password().replace(" ", ""), "password_assignment").t(" registry.example.com\n")
        else:
            b.t("npm config set //registry.npmjs.org/:_authToken ").v(v.npm(), "npm_token").t("\n")


def rec_chat(v, b):
    lang = v.pick(list(LANG))
    filler, lab_mail, lab_phone, pw_phrase, iban_phrase = LANG[lang]
    a, c = v.person(), v.person()
    for _ in range(v.r.randrange(3, 7)):
        who = v.pick([a, c])
        b.t(f"[{v.r.randrange(8, 19):02d}:{v.r.randrange(60):02d}] {who[0]}: ")
        k = v.r.randrange(9)
        if k == 0:
            b.t(f"{lab_phone} ").v(v.phone(), "phone").t("\n")
        elif k == 1:
            b.t(f"{lab_mail}: ").v(v.email(), "email").t(" " + v.pick(filler) + "\n")
        elif k == 2:
            b.t(iban_phrase + " ").v(v.iban(), "iban").t("\n")
        elif k == 3:
            b.t(f"{pw_phrase} ").v(v.password(), "password_assignment").t("\n")
        elif k == 4:
            b.t(f"SSN: ").v(v.ssn(v.pick(["-", "", " "])), "us_ssn").t(" (W-9)\n")
        elif k == 5:
            b.t(f"{v.pick(filler)} ({v.decoy()})\n")
        elif k == 6:
            b.t("VPN gateway ").v(v.ipv4(), "ipv4").t(", backup ").v(v.ipv6(), "ipv6").t("\n")
        elif k == 7:
            b.t("card ").v(v.card(), "credit_card").t(" " + v.pick(filler) + "\n")
        else:
            b.t(v.pick(filler) + "\n")


def rec_urls(v, b):
    """URLs with values in query strings, form bodies and userinfo, percent-encoded."""
    for _ in range(v.r.randrange(2, 5)):
        k = v.r.randrange(5)
        if k == 0:
            b.t("GET https://crm.example.com/api/contacts/search?q=").v(urllib.parse.quote(v.email(), safe=""), "email").t("&limit=20\n")
        elif k == 1:
            b.t("POST /checkout body: name=Ana+Costa&tel=").v(urllib.parse.quote_plus(v.phone()), "phone").t("&zip=10115\n")
        elif k == 2:
            b.t("redirect: https://login.example.org/cb?state=" + v.sha(16) + "&access_token=").v(v.api_key(), "generic_api_key").t("&expires_in=3600\n")
        elif k == 3:
            b.t("amqp://orders:").v(urllib.parse.quote(v.password() + "/@", safe=""), "db_url_password").t("@mq.internal:5672/%2F\n")
        else:
            b.t("https://maps.googleapis.com/maps/api/geocode/json?address=Friedrichstra%C3%9Fe+43&key=").v(v.google(), "google_api_key").t("\n")


def rec_negative(v, b):
    """No labelled value: identifiers, digests, versions, masked and invalid look-alikes."""
    lang = v.pick(list(LANG))
    for _ in range(v.r.randrange(4, 10)):
        k = v.r.randrange(6)
        if k == 0:
            b.t(f"{v.pick(LANG[lang][0])} ref {v.decoy()}\n")
        elif k == 1:
            b.t(f'{{"id":"{v.uuid()}","etag":"W/\\"{v.sha(16)}\\"","version":"{v.r.randrange(1, 9)}.{v.r.randrange(20)}.{v.r.randrange(40)}"}}\n')
        elif k == 2:
            b.t(f"password: {v.pick(['${DB_PASSWORD}', '********', 'changeme', '<your-password>', '{{ .Values.db.password }}'])}\n")
        elif k == 3:
            b.t(f"card {v.pick(['**** **** **** ', 'ending in ', 'xxxx-xxxx-xxxx-'])}{v.s('0123456789', 4)} charged €{v.r.randrange(5, 500)},00\n")
        elif k == 4:
            b.t(f"api_key: YOUR_API_KEY_HERE  # see docs; commit {v.sha(40)}\n")
        else:
            b.t(f"{v.decoy()} | {v.decoy()} | {v.decoy()}\n")


def rec_pem_json(v, b):
    b.t('{"tool":"read_file","path":"/etc/treaty/identity.key","result":"')
    b.v(json.dumps(v.pem())[1:-1], "private_key").t('","bytes":' + str(v.r.randrange(100, 3000)) + "}\n")


KINDS = [("log", rec_log, 60), ("json", rec_json_api, 45), ("json", rec_json_config, 45), ("csv", rec_table, 70),
         ("csv", rec_aws_console_csv, 10), ("email", rec_email, 45), ("log", rec_stack, 30), ("config", rec_config, 50),
         ("shell", rec_shell, 35), ("chat", rec_chat, 45), ("url", rec_urls, 25), ("negative", rec_negative, 60),
         ("json", rec_pem_json, 10)]


def main():
    out = []
    i = 0
    for kind, fn, count in KINDS:
        for j in range(count):
            v = V(f"pii-heldout-{fn.__name__}-{j}")
            b = B()
            fn(v, b)
            text = b.text()
            rid = f"ho-{i:05d}"
            i += 1
            # Sealed part: a fixed third of the records by hash of the id, never inspected while tuning.
            split = "sealed" if int(hashlib.sha256(rid.encode()).hexdigest(), 16) % 3 == 0 else "open"
            for s in b.spans:
                assert text.encode()[s["start"]:s["end"]], (rid, s)
            out.append({"id": rid, "kind": kind if kind != "negative" else "log", "split": split, "text": text, "spans": b.spans})
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "pii-secrets.heldout.jsonl"), "w", encoding="utf-8") as f:
        for r in out:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(len(out), "records", sum(len(r["spans"]) for r in out), "spans")


if __name__ == "__main__":
    main()
