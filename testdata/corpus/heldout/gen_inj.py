"""Writes ../injection.heldout.jsonl from the hand-written texts in inj_text.py, each
placed in one or more carriers an agent actually reads (email, tool result JSON, web
page, calendar entry, review, CSV cell, chat). Run: python3 gen_inj.py"""

import hashlib
import json
import os
import random

from inj_text import BEN, HARD, INJ
from values import V
import gen_pii

SUBJ = {"en": "Re: quarterly review", "es": "Re: revisión trimestral", "fr": "Re : revue trimestrielle", "de": "AW: Quartalsbericht",
        "pt": "Re: revisão trimestral", "it": "R: revisione trimestrale", "zh": "回复：季度回顾", "ja": "Re: 四半期レビュー",
        "ko": "Re: 분기 검토", "ru": "Re: квартальный отчёт", "ar": "رد: المراجعة الفصلية", "hi": "Re: तिमाही समीक्षा",
        "bn": "Re: ত্রৈমাসিক পর্যালোচনা", "ur": "جواب: سہ ماہی جائزہ", "id": "Re: tinjauan kuartalan", "tr": "Ynt: çeyrek değerlendirme",
        "vi": "Re: đánh giá quý"}


def carriers(r, lang, text, pre):
    """Each function returns the text as an agent would receive it."""
    def plain():
        return text

    def email():
        return (f"From: {r.choice(V.FIRST)} {r.choice(V.LAST)} <noreply@{r.choice(V.DOMAINS)}>\nSubject: {SUBJ[lang]}\n"
                f"Date: Thu, 4 Dec 2026 09:{r.randrange(10, 59)}:00 +0000\n\n{pre}\n\n{text}\n\n--\nSent from my phone")

    def tool_json():
        return json.dumps({"type": "tool_result", "tool_use_id": f"call_{r.getrandbits(48):012x}",
                           "content": [{"type": "text", "text": f"{pre} {text}"}]}, ensure_ascii=False)

    def web():
        hidden = r.choice([f"<!-- {text} -->", f"<div style=\"display:none\">{text}</div>", f"<p>{text}</p>",
                           f"<span aria-hidden=\"true\" style=\"font-size:0\">{text}</span>"])
        return (f"<html lang=\"{lang}\"><head><title>{pre[:40]}</title></head><body>\n<main><h1>{pre[:30]}</h1>\n"
                f"<p>{pre}</p>\n{hidden}\n</main><footer>© 2026</footer></body></html>")

    def calendar():
        return (f"BEGIN:VEVENT\nSUMMARY:{SUBJ[lang]}\nDTSTART:20261210T140000Z\nLOCATION:Room 4B\n"
                f"DESCRIPTION:{pre} {text}\nEND:VEVENT")

    def review():
        return json.dumps({"product_id": f"SKU-{r.randrange(10000, 99999)}", "rating": r.randrange(1, 6),
                           "author": r.choice(V.FIRST), "body": f"{pre} {text}"}, ensure_ascii=False, indent=2)

    def csv_cell():
        q = text.replace('"', '""')
        return (f"ticket_id,status,notes\n{r.randrange(1000, 9999)},open,\"{pre}\"\n"
                f"{r.randrange(1000, 9999)},pending,\"{q}\"\n")

    def chat():
        return f"[{r.randrange(8, 19)}:{r.randrange(10, 59)}] {r.choice(V.FIRST)}: {pre}\n[{r.randrange(8, 19)}:{r.randrange(10, 59)}] {r.choice(V.FIRST)}: {text}"

    def markdown():
        return f"# Notes\n\n{pre}\n\n## Details\n\n{text}\n"

    return {"plain": plain, "email": email, "tool_json": tool_json, "web": web, "calendar": calendar,
            "review": review, "csv": csv_cell, "chat": chat, "markdown": markdown}


def split_of(group):
    # Sealed part: a third of the *texts* (every carrier of one text lands in the same part).
    return "sealed" if int(hashlib.sha256(group.encode()).hexdigest(), 16) % 3 == 0 else "open"


def main():
    r = random.Random("inj-heldout")
    out = []

    def add(label, lang, style, group, text):
        out.append({"id": f"ho-inj-{len(out):04d}", "source": "treaty heldout (hand-written, see README.md)",
                    "label": label, "lang": lang, "style": style, "group": group, "split": split_of(group), "text": text})

    for lang, items in INJ.items():
        for i, (style, text) in enumerate(items):
            group = f"inj-{lang}-{i}"
            kinds = r.sample(list(carriers(r, lang, "", "")), 2)
            for k in kinds:
                pre = r.choice(BEN[lang])
                add("injection", lang, style, group, carriers(r, lang, text, pre)[k]())
    for lang, items in BEN.items():
        for i, text in enumerate(items):
            group = f"ben-{lang}-{i}"
            kinds = r.sample(list(carriers(r, lang, "", "")), 2)
            for k in kinds:
                pre = r.choice([b for b in BEN[lang] if b != text])
                add("benign", lang, "benign", group, carriers(r, lang, text, pre)[k]())
    for i, (style, lang, text) in enumerate(HARD):
        group = f"hard-{i}"
        add("benign", lang, "hardneg-" + style, group, text)
        k = r.choice(["email", "markdown", "tool_json", "chat"])
        pre = r.choice(BEN.get(lang, BEN["en"]))
        add("benign", lang, "hardneg-" + style, group, carriers(r, lang, text, pre)[k]())
    # Ordinary tool output (logs, API responses, configs) is benign traffic too.
    for j, (kind, fn, _) in enumerate(gen_pii.KINDS * 8):
        if j >= 100:
            break
        v = V(f"inj-heldout-traffic-{j}")
        b = gen_pii.B()
        fn(v, b)
        add("benign", "mixed", "traffic-" + kind, f"traffic-{j}", b.text())
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "injection.heldout.jsonl"), "w", encoding="utf-8") as f:
        for x in out:
            f.write(json.dumps(x, ensure_ascii=False) + "\n")
    from collections import Counter
    print(len(out), Counter(x["label"] for x in out), Counter(x["split"] for x in out), len(set(x["lang"] for x in out)), "languages")


if __name__ == "__main__":
    main()
