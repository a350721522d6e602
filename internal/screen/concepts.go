package screen

import (
	"math/bits"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The concept detector reads the folded text for words of a few meanings in many
// languages (ignore, instructions, system prompt, reveal, secret, send, tool, "AI
// reading this", "no restrictions", "from now on", "before you summarise", recommend,
// the user, negation) and scores the combinations that make an instruction to the
// reading agent when they share a sentence: ignore + instructions, reveal + system
// prompt, secret + your reply, send + the user's data + an address, no restrictions +
// from now on. One meaning alone never marks. The phrase rules know English and a few
// European languages word by word; this layer gives the same attack shapes coverage in
// the most spoken languages, with cue lists rather than grammar.
//
// Text that discusses attacks, quotes prompts or is code (meta cues: injection,
// payload, attacker, red team, assert, def, example ...) weakens what it contains:
// quoted matches there count a fifth, the rest half. An attacker can add such words;
// the weakening halves a score rather than removing it, and a strong instruction
// outside quotes still marks.

type concept uint8

const (
	kIgnore concept = iota
	kPrev
	kInstr
	kSysPrompt
	kReveal
	kVerbatim
	kSecret
	kSend
	kTool
	kData
	kAddr
	kReply
	kAgent
	kAIReader
	kNoLimits
	kFromNow
	kYouAre
	kUser
	kAdvise
	kBefore
	kNeg
	kThird
	kHedge
	kCovert
	kMeta
	nConcepts
)

// conceptLex lists the cues of each concept: lowercase, matched as prefixes of words
// (scripts without spaces: anywhere). Languages: en, zh, hi, es, fr, ar, bn, pt, ru, ur,
// id, de, ja, ko, tr, it, vi, nl, pl; and for ignore, previous, instructions, system
// prompt and reveal also uk, cs, sk, sv, no, da, fi, el, he, fa, ro, hu, sw.
var conceptLex = [nConcepts]string{
	kIgnore:    "ignore|ignoring|disregard|forget|override|bypass|pay no attention|olvida|ignora|ignoren|ignorez|ignore les|oublie|vergiss|vergessen|ignorier|missachte|esqueça|esqueca|desconsidere|dimentica|ignorate|忽略|无视|忽视|忘记|忘掉|無視|忘れ|무시|잊어|игнорир|забудь|забудьте|проигнорир|تجاهل|انس|अनदेखा|नज़रअंदाज़|नजरअंदाज|भूल जाओ|उपेक्षा|উপেক্ষা|ভুলে যাও|نظر انداز|بھول جاؤ|abaikan|lupakan|yok say|unut|görmezden gel|bỏ qua|quên|negeer|vergeet|zignoruj|zapomnij|ігнор|проігнор|ignoruj|zapomeň|zapomen|zabudni|glöm|glom |glem |αγνόησ|αγνοήσ|ξέχασε|ξεχάστε|התעלם|התעלמי|שכח את|نادیده بگیر|فراموش کن|ignoră|ignorați|uită|uitați|hagyd figyelmen|figyelmen kívül|felejtsd el|puuza|sahau|unohda|ohita|jätä huomiotta",
	kPrev:      "previous|prior|above|earlier|preceding|all prior|anteriores|previas|precedentes|précédent|precedent|bisherig|vorherig|obigen|anteriores|precedenti|之前|以上|上面|先前|此前|これまで|以前|上記|이전|предыдущ|прежн|السابقة|पिछले|पहले के|আগের|پچھلی|پچھلے|sebelumnya|önceki|trước đó|vorige|eerdere|poprzednie|попередн|předchozí|predchádzajúc|tidigare|tidligere|προηγούμεν|הקודמות|הקודמים|הקודם|קודמות|قبلی|anterioar|korábbi|előző|awali|zilizopita|aiemm|edellis|aikaisemm",
	kInstr:     "instructions|instruction|directives|system prompt|rules|instrucciones|instruções|instrucoes|instruções|consignes|directives|anweisungen|instruktionen|istruzioni|指令|指示|提示词|规则|プロンプト|지시|지침|инструкци|указани|правила|التعليمات|تعليمات|निर्देश|নির্দেশ|ہدایات|instruksi|talimat|hướng dẫn|instructies|instrukcje|polecenia|інструкці|вказівк|pokyny|pokyn|instrukce|inštrukci|instruktion|instruks|הוראות|ההוראות|הנחיות|ההנחיות|οδηγίες|οδηγιών|εντολές|دستورالعمل|دستورات|instrucțiun|utasítás|maagizo|maelekezo|ohjeet|ohjeita|ohjee",
	kSysPrompt: "system prompt|systemprompt|system message|initial instructions|initial configuration|hidden instructions|hidden developer|prompt de sistema|prompt del sistema|instrucciones de sistema|prompt système|prompt systeme|instructions cachées|instructions cachees|systemprompt|prompt di sistema|prompt do sistema|prompt de sistema|系统提示|系统指令|隐藏指令|システムプロンプト|시스템 프롬프트|системный промпт|системн|скрытые инструкции|موجه النظام|التعليمات المخفية|सिस्टम प्रॉम्प्ट|সিস্টেম প্রম্পট|سسٹم پرامپٹ|prompt sistem|sistem istemi|lời nhắc hệ thống|systeemprompt|prompt systemowy|системний промпт|systémový prompt|systemový prompt|μήνυμα συστήματος|προτροπή συστήματος|הנחיית המערכת|הנחיות המערכת|פרומפט המערכת|پرامپت سیستم|promptul de sistem|rendszerprompt|maelekezo ya mfumo|järjestelmäkehote|järjestelmäprompt",
	kReveal:    "print|reveal|repeat|output|display|show|dump|recite|muéstrame|muestrame|muestra|revela|imprime|affiche|révèle|revele|répète|zeige|zeig|gib|ausgeben|mostre|mostra|mostrami|riporta|stampa|输出|显示|打印|重复|表示|出力|출력|보여|выведи|покажи|повтори|اعرض|أظهر|دिखाओ|দেখাও|دکھاؤ|tampilkan|göster|yazdır|in ra|hiển thị|toon|pokaż|wypisz|виведи|odhal|zobraz|ukaž|visa |vis |αποκάλυψε|δείξε|εμφάνισε|חשוף|הצג|הראה|نشان بده|فاش کن|dezvăluie|arată|afișează|mutasd|fedd fel|írd ki|onyesha|fichua|ufichue|näytä|paljasta",
	kVerbatim:  "verbatim|word for word|palabra por palabra|mot pour mot|mot à mot|intégralement|integralement|wortwörtlich|wortwortlich|wörtlich|wortlich|sem omitir|parola per parola|逐字|原文|一字一句|そのまま|한 글자도|그대로|дословно|слово в слово|حرفي|शब्दशः|হুবহু|لفظ بہ لفظ|kata demi kata|kelimesi kelimesine|nguyên văn|woord voor woord|słowo w słowo",
	kSecret:    "api key|api_key|apikey|access token|access_token|auth token|oauth|client secret|secret key|session cookie|credentials|passwords|password|openai_api_key|token de acceso|tokens de acceso|clave de api|clave api|jeton|jeton d'authentification|mot de passe|zugriffstoken|api-schlüssel|api-schlussel|passwort|token de acesso|chave da api|senha|token di accesso|chiave api|访问令牌|令牌|api 密钥|密钥|密码|アクセストークン|api キー|api キ|パスワード|액세스 토큰|api 키|비밀번호|токен доступа|ключ api|пароль|رمز الوصول|مفتاح api|كلمة المرور|एक्सेस टोकन|api कुंजी|पासवर्ड|অ্যাক্সেস টোকেন|api কী|পাসওয়ার্ড|رسائی ٹوکن|api کلید|پاس ورڈ|token akses|kunci api|kata sandi|erişim belirteci|api anahtarı|api anahtari|şifre|mã truy cập|khóa api|mật khẩu",
	kSend:      "send_email|send_mail|http_post|enviar_correo|enviar_arquivo|invia_email|envoyer_courriel|send|forward|transfer|upload|post it|exfiltrate|forwarded|envía|envia|mandar|manda|enviar|envoie|transfère|joins|schicke|sende|übertrage|weiterleiten|invia|manda|inoltra|发送|转发|送信|転送|보내|전송|отправь|перешли|أرسل|ارسل|भेज|পাঠাও|بھیج|kirim|gönder|gửi|stuur|wyślij",
	kTool:      "send_email|send_mail|http_get|http_post|enviar_correo|enviar_arquivo|invia_email|envoyer_courriel|the tool|tool with|use the tool|herramienta|l'outil|outil|werkzeug|ferramenta|strumento|工具|ツール|도구|инструмент|أداة|टूल|টুল|ٹول|alat|aracını|araci|công cụ",
	kData:      "inbox|emails|messages|conversation|chat history|address book|contacts|files|documents|contracts|customer list|historial|conversación|correos|bandeja|contactos|dossier|fichiers|posteingang|kundenliste|dateien|contratos|pasta|cronologia|邮件|收件箱|联系人|文件|受信トレイ|メール|連絡先|받은편지함|메일|переписк|письма|صندوق الوارد|رسائل|इनबॉक्स|ईमेल|ইনবক্স|ইমেইল|ان باکس|ای میل|kotak masuk|gelen kutusu|e-posta|hộp thư|database|base de datos|datenbank|数据库|データベース|데이터베이스|базу данных|قاعدة|डेटाबेस",
	kAddr:      "@|http://|https://|webhook",
	kReply:     "reply|response|next message|your answer|respuesta|réponse|reponse|antwort|resposta|risposta|回复|返信|답장|ответ|الرد|جواب|जवाब|উত্তর|balasan|yanıt|yanit|yanıtına|phần trả lời|trả lời|antwoord|odpowied",
	kAgent:     "agent|assistant|asistente|l'agent|agente|agenten|assistente|智能体|助手|エージェント|アシスタント|에이전트|어시스턴트|агент|ассистент|الوكيل|المساعد|एजेंट|सहायक|এজেন্ট|সহকারী|ایجنٹ|معاون|agen|asisten|ajan|asistan|tác tử|trợ lý",
	kAIReader:  "ai model reading|ai models reading|any ai model|ai assistants|automated agents|note to any ai|to any ai|instructions for automated|for the assistant summarising|for the assistant summarizing|modelos de ia que|l'ia qui lit|pour l'ia|ki-assistenten|ki-assistent|modelos de ia que|modelli di ia|致阅读|阅读本页面的|を読むaiモデル|読むai|읽는 ai|ai 모델에게|для ии|ии, читающего|لنماذج الذكاء الاصطناعي|الذكاء الاصطناعي التي تقرأ|पढ़ने वाले ai|पढ़ने वाले|পড়া এআই|এআই মডেলের|پڑھنے والے اے آئی|اے آئی ماڈل|untuk model ai|model ai yang membaca|okuyan yapay zek|yapay zekâ modellerine|yapay zeka modellerine|mô hình ai đọc|cho mô hình ai",
	kNoLimits:  "no content policy|no restrictions|without restrictions|no rules|never refuses|never refuse|no limits|unrestricted|sin restricciones|sin restricciones ni|nunca se niega|sans jamais refuser|libérée de toutes|liberee de toutes|ohne regeln|niemals ablehnt|sem regras|nunca recusa|priva di regole|senza mai rifiutare|没有任何规则|不会拒绝|無制限|制限のない|断らず|제한도 없는|거절하지|без правил|без ограничений|никогда не отказывает|بلا قواعد|بلا قيود|ولا يرفض|कोई नियम नहीं|कभी मना नहीं|কোনো নিয়ম ছাড়া|না বলে না|کوئی اصول نہیں|انکار نہیں|tanpa aturan|tidak pernah menolak|hiçbir kuralı olmayan|asla reddetmeyen|không có quy tắc|không bao giờ từ chối|zonder regels|bez zasad",
	kFromNow:   "from now on|from this point|a partir de ahora|à partir de maintenant|a partir de maintenant|désormais|desormais|ab sofort|ab jetzt|von nun an|de agora em diante|a partir de agora|da ora in poi|da questo momento|从现在起|从现在开始|今から|今後は|지금부터|с этого момента|теперь ты|من الآن|अब से|এখন থেকে|اب سے|mulai sekarang|bundan sonra|artık|từ giờ|từ bây giờ|vanaf nu|od teraz",
	kYouAre:    "you are now|now you are|you are unbound|eres|tu es|du bist|bist du|você é|voce e|sei |你是|あなたは|너는|ты —|ты «|ты \"|أنت «|أنت|तुम|তুমি|تم '|kamu adalah|sen hiç|bạn là|je bent|jesteś",
	kUser:      "the user|user's|users|usuario|l'utilisateur|utilisateur|nutzer|benutzer|usuário|usuario|utente|用户|ユーザー|사용자|пользовател|المستخدم|उपयोगकर्ता|ব্যবহারকারী|صارف|pengguna|kullanıcı|kullanici|người dùng|gebruiker|użytkownik",
	kAdvise:    "recommend|suggest|advise|mention that|state that|tell the user|say that|switch to|recomienda|recomendando|sugerir|conseille|conseiller|recommande|empfiehl|empfehle|rate ab|sugerisse|sugira|consigliare|consiglia|建议|推荐|勧め|おすすめ|권해|추천|посоветуй|рекомендуй|انصح|تنصح|सलाह|पরামর্শ|পরামর্শ|مشورہ|sarankan|rekomendasikan|öner|khuyên|aanbevel|poleć",
	kBefore:    "before you write|before you answer|before you summar|before continuing|when you summar|when you answer|before writing|antes de resumir|antes de responder|avant de répondre|avant de repondre|avant de résumer|bevor du|antes de resumir|prima di rispondere|prima di riassumere|在总结之前|总结之前|回答之前|要約を書く前に|前に|요약하기 전에|전에|прежде чем|перед тем как|قبل أن تكتب|قبل أن|लिखने से पहले|से पहले|লেখার আগে|আগে|لکھنے سے پہلے|سے پہلے|sebelum membuat|sebelum menjawab|yazmadan önce|önce|trước khi",
	kNeg:       "never|don't|dont|do not|not |no |nunca|jamás|jamais|ne pas|n'est|niemals|nicht|gebt|não|nao|mai |non |不要|不|别|勿|ないで|しないで|마세요|않|никогда|никому|нельзя|لا |न करें|नहीं|कभी|না|کبھی|نہ |jangan|asla|paylaşmayın|paylasmayin|đừng|không bao giờ",
	kCovert:    "silently|without mentioning|without telling|do this quietly|don't tell the user|dont tell the user|without the user|sin mencionar|sin decirle|sans le dire|sans en parler|ohne es zu erwähnen|ohne es zu erwahnen|sem mencionar|senza dirlo|senza avvisare|悄悄|不要告诉用户|黙って|ユーザーに伝えず|몰래|молча|не сообщая|دون إخبار|بصمت|बिना बताए|চুপচাপ|না জানিয়ে|بتائے بغیر|diam-diam|tanpa memberi tahu|sessizce|kullanıcıya söylemeden|lặng lẽ|zonder te vermelden|po cichu",
	kThird:     "its system|their system|the chatbot|the bot |the model's|the models|chatbot's|its instructions|their instructions|su prompt|son prompt|seinen systemprompt",
	kHedge:     "if |unless |in case|si |wenn |falls |se |如果|もし|만약|если|إذا|अगर|যদি|اگر|jika|eğer|eger|nếu|als ",
	kMeta:      "`--|jailbreaks like|jailbreaks such as|jailbreak prompts|jailbreak attempts|a good system prompt|writing a system prompt|how to write a prompt|prompt engineering|best practice|prompt injection|prompt-injection|indirect prompt|injection|payload|an attacker |the attacker |attackers |attacker-controlled|threat model|mitigation|remediation|red-team|red team|severity|retest|phishing awareness|security training|typical payload|classic payload|guardrail|defenders|owasp|test case|fixture|assert |def |const |return [|promptTemplate|prompttemplate|system_prompt =|system_prompt|system =|template =|example conversation|example system prompt|faq:|tutorial|quiz|postmortem|bug #|review comment|nit:|inyección|inyeccion|atacante|hallazgo|injection de prompt|attaquant|défense|defense|prompt-injection|angriff|befund|abwehr|injeção|injecao|iniezione|提示注入|攻击者|防御|プロンプトインジェクション|攻撃|対策|프롬프트 인젝션|공격자|방어|промпт-инъекция|инъекция|злоумышленник|защита|حقن|المهاجم|इंजेक्शन|हमलावर|ইনজেকশন|انجیکشن|injeksi|enjeksiyon|ejemplo de prompt|exemple de prompt|beispiel für einen systemprompt|beispiel fur einen systemprompt|# 系统提示词",
}

type cue struct {
	text     string
	c        concept
	boundary bool   // must start a word
	meta     uint8  // ordinal among the meta cues, to count distinct ones
	head     uint64 // the first eight bytes (fewer for a shorter cue), little-endian,
	mask     uint64 // and the bits of head that count
}

// headBits sizes the cue index: 4096 buckets for about a thousand cues keep the lists
// short, and the 512-byte bitmap of the used ones keeps most words' misses in L1.
const headBits = 12

// head3 hashes the three bytes of s at i (every cue but "@" has three or more).
func head3(s string, i int) uint16 {
	h := (uint32(s[i]) | uint32(s[i+1])<<8 | uint32(s[i+2])<<16) * 0x9E3779B1
	return uint16(h >> (32 - headBits))
}

type conceptSet struct {
	// bucket maps a hash of a cue's first three bytes to its entries in ents:
	// start<<8 | count, 0 for none. Entries are flat so a miss costs two loads.
	bucket [1 << headBits]uint32
	used   [1 << headBits / 64]uint64 // the buckets that are not empty: most words miss here, in 512 bytes
	ents   []cueEnt
	at     []int32 // the cue "@"
	global []int32 // meta cues that start with punctuation, found anywhere
	cues   []cue
}

// cueEnt is a cue's index entry: its first eight bytes, and whether it must start a word.
type cueEnt struct {
	head, mask uint64
	idx        uint16
	boundary   bool
}

func compileConcepts() *conceptSet {
	cs := &conceptSet{}
	nMeta := 0
	var byHead [1 << headBits][]int32
	for c := concept(0); c < nConcepts; c++ {
		for _, w := range strings.Split(conceptLex[c], "|") {
			f := fold(w, nil).text
			if len(f) < 2 {
				if f == "@" {
					f = "@"
				} else {
					continue
				}
			}
			r, _ := utf8.DecodeRuneInString(f)
			b := !(unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Katakana, r) ||
				!unicode.IsLetter(r))
			idx := int32(len(cs.cues))
			var mask uint64
			for k := 0; k < len(f) && k < 8; k++ {
				mask |= 0xFF << (8 * k)
			}
			cs.cues = append(cs.cues, cue{text: f, c: c, boundary: b, meta: uint8(nMeta), head: loadUpTo8(f), mask: mask})
			if c == kMeta {
				nMeta++
			}
			if f == "@" {
				cs.at = append(cs.at, idx)
				continue
			}
			if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
				// A cue that starts with punctuation ("`--") can only say the text
				// is meta: it is looked for once in the whole text.
				if c == kMeta {
					cs.global = append(cs.global, idx)
				}
				continue
			}
			byHead[head3(f, 0)] = append(byHead[head3(f, 0)], idx)
		}
	}
	for h, list := range byHead {
		if len(list) == 0 {
			continue
		}
		cs.bucket[h] = uint32(len(cs.ents))<<8 | uint32(len(list))
		cs.used[h/64] |= 1 << (h % 64)
		for _, idx := range list {
			c := &cs.cues[idx]
			cs.ents = append(cs.ents, cueEnt{head: c.head, mask: c.mask, idx: uint16(idx), boundary: c.boundary})
		}
	}
	return cs
}

// conceptWeights are the combinations scored per sentence.
type comboHit struct {
	id     string
	code   string
	weight float64
	quoted bool // every cue of the combination was inside quotation marks
}

// sentence accumulates the concepts of one sentence.
type sentence struct {
	any, unq uint32 // concepts present; present outside quotes
}

func (m uint32mask) has(c concept) bool { return uint32(m)&(1<<c) != 0 }

type uint32mask uint32

// match returns the concept combinations of the folded text as signals, and the
// number of distinct meta cues in it. It looks only where a cue can start: at each
// word of f (and after an elided article glued to it), and at every character of
// words in scripts written without spaces. Sentences and quotation are fold's.
func (cs *conceptSet) match(f *folded) ([]signal, int, bool) {
	var (
		prev sentence
		hits []comboHit
		text = f.text
		n    = len(text)
		m    = conceptScan{cs: cs, text: text}
	)
	cur := &m.cur
	toks := f.toks.t
	leet, split := 0, 0 // words with a digit between letters; single letters joined by - . _
	syll := 0           // pieces of words joined by a hyphen, a middle dot or a hyphenation point
	for ti := range toks {
		t := &toks[ti]
		if ti > 0 {
			// Most words are apart by a space: test the gap's first byte inline.
			if g := toks[ti-1].end; g < t.start && t.start-g <= 3 && (text[g] == '-' || text[g] == 0xC2 || text[g] == 0xE2) && syllableJoin(text, toks[ti-1], *t) {
				syll++
			}
		}
		if w := text[t.start:t.end]; t.digit && leetWord(w) { // no digit, no leetspeak
			leet++
		} else if len(w) == 1 && ti > 0 && int(toks[ti-1].end) == int(t.start)-1 && toks[ti-1].end-toks[ti-1].start == 1 &&
			strings.IndexByte("-._ \n", text[t.start-1]) >= 0 {
			split++
		} else if len(w) > 1 && split < 2 {
			split = 0
		}
		// fold breaks at every '.', also inside a domain or a number (mail.example).
		inWord := t.start > 1 && text[t.start-1] == '.' && int(toks[max(ti-1, 0)].end) == int(t.start)-1
		if t.brk && ti > 0 && !inWord || ti > 0 && sentenceMarkBetween(text, int(toks[ti-1].end), int(t.start)) {
			hits = appendCombos(hits, *cur, prev)
			prev, *cur = *cur, sentence{}
		}
		m.quoted = t.quoted
		st, en := int(t.start), int(t.end)
		ident := st > 0 && text[st-1] == '_'
		m.try(st, !ident)
		// elidedBefore's articles start with one of a few letters: probe only there.
		// When the word starts the text or follows a non-letter (nearly always), the
		// article can only be its own first one to three letters, so a table test of
		// those (elidedAt) rules out most probes before elidedBefore looks.
		if lead := st > 0 && isLower(text[st-1]); elisionStart[text[st]] || lead {
			switch {
			case en-st > 2 && (lead || elidedAt(text, st, 1)) && elidedBefore(text, st+1):
				m.try(st+1, true)
			case en-st > 3 && (lead || elidedAt(text, st, 2)) && elidedBefore(text, st+2):
				m.try(st+2, true)
			case en-st > 4 && (lead || elidedAt(text, st, 3)) && elidedBefore(text, st+3):
				m.try(st+3, true)
			}
		}
		if text[st] >= 0x80 {
			// Scripts without spaces: a cue may start at any character.
			for k := st + 1; k < en; k++ {
				if c := text[k]; c >= 0xC0 {
					m.try(k, false)
				}
			}
		}
		if en+1 < n && text[en] == '@' && isLower(text[en+1]) {
			for _, ci := range cs.at {
				m.seen(&cs.cues[ci]) // an address: a local part, '@', a domain
			}
		}
	}
	hits = appendCombos(hits, *cur, prev)
	for _, ci := range cs.global {
		if c := &cs.cues[ci]; strings.Contains(text, c.text) {
			m.meta[c.meta/64] |= 1 << (c.meta % 64)
		}
	}
	nmeta := 0
	for _, w := range m.meta {
		nmeta += bits.OnesCount64(w)
	}
	var out []signal
	for _, h := range hits {
		out = append(out, signal{id: h.id, code: h.code, weight: h.weight * metaFactor(nmeta, h.quoted)})
	}
	return out, nmeta, leet >= 2 || split >= 2 || syll >= 3
}

// syllableJoin reports whether the words a and b are pieces of one word cut into
// syllables: lowercase letters glued by a middle dot or a hyphenation point, or by a
// hyphen with a piece of three letters or fewer (ig-nore, in-struc-tions). It only
// decides whether a second reading is worth its cost; the reading adds only what is
// hostile.
func syllableJoin(text string, a, b token) bool {
	gap := text[a.end:b.start]
	if gap != "-" && gap != "\u00b7" && gap != "\u2027" {
		return false
	}
	wa, wb := text[a.start:a.end], text[b.start:b.end]
	if !lowerWord(wa) || !lowerWord(wb) {
		return false
	}
	return gap != "-" || len(wa) <= 3 || len(wb) <= 3
}

func lowerWord(w string) bool {
	for i := 0; i < len(w); i++ {
		if !isLower(w[i]) {
			return false
		}
	}
	return w != ""
}

// conceptScan is the state of one match: the current sentence's concepts, whether the
// current word is quoted, and the meta cues seen.
type conceptScan struct {
	cs     *conceptSet
	text   string
	cur    sentence
	quoted bool
	meta   [4]uint64 // meta cues seen, by ordinal
}

func (m *conceptScan) seen(c *cue) {
	m.cur.any |= 1 << c.c
	if !m.quoted {
		m.cur.unq |= 1 << c.c
	}
	if c.c == kMeta {
		m.meta[c.meta/64] |= 1 << (c.meta % 64)
	}
}

// try looks for cues at i; boundary allows those that must start a word.
func (m *conceptScan) try(i int, boundary bool) {
	text, n := m.text, len(m.text)
	if i+2 >= n {
		return
	}
	h := head3(text, i)
	if m.cs.used[h/64]&(1<<(h%64)) == 0 {
		return
	}
	b := m.cs.bucket[h]
	w := loadUpTo8(text[i:])
	for _, e := range m.cs.ents[b>>8 : b>>8+b&0xFF] {
		if w&e.mask != e.head || e.boundary && !boundary {
			continue
		}
		c := &m.cs.cues[e.idx]
		if len(c.text) > 8 && !strings.HasPrefix(text[i:], c.text) {
			continue
		}
		if e := i + len(c.text); c.boundary && e < n && text[e] == '_' {
			continue // an identifier (auth_token_ttl)
		}
		m.seen(c)
	}
}

// sentenceMarkBetween reports a sentence end that fold does not count as one: the
// Devanagari danda, the Urdu full stop and the Arabic question mark.
func sentenceMarkBetween(s string, a, b int) bool {
	for k := a; k+1 < b; k++ {
		switch s[k] {
		case 0xE0:
			if k+2 < b && s[k+1] == 0xA5 && s[k+2] == 0xA4 {
				return true
			}
		case 0xDB:
			if s[k+1] == 0x94 {
				return true
			}
		case 0xD8:
			if s[k+1] == 0x9F {
				return true
			}
		}
	}
	return false
}

// addConcepts adds concept signals to acc as evidence beyond the phrase and pattern
// rules: where a rule already reported the same code with weight w0, a concept signal
// of weight w adds only what lifts that code to w, so one instruction read by two
// detectors is not counted twice.
func addConcepts(acc *accumulator, sigs []signal) {
	for _, sg := range sigs {
		w0 := 0.0
		for _, o := range acc.sig {
			if o.code == sg.code && o.weight > w0 {
				w0 = o.weight
			}
		}
		if sg.weight <= w0 {
			continue
		}
		sg.weight = (sg.weight - w0) / (1 - w0)
		acc.add(sg)
	}
}

// elisionStart marks the first letters of the articles and particles elidedBefore
// accepts.
var elisionStart = func() (t [256]bool) {
	for _, c := range []byte("ldjmnstcqau") {
		t[c] = true
	}
	return t
}()

// elidedAt is what elidedBefore(s, st+n) needs when the word at st follows no
// letter: its first n letters are an article of n letters, and a vowel follows.
func elidedAt(s string, st, n int) bool {
	if !isVowel[s[st+n]] {
		return false
	}
	switch n {
	case 1:
		return article1[s[st]]
	case 2:
		return s[st:st+2] == "qu" || s[st:st+2] == "un"
	}
	return s[st:st+3] == "all"
}

// isVowel and article1 are elidedBefore's vowels and one-letter articles.
var isVowel, article1 = func() (v, a [256]bool) {
	for _, c := range []byte("aeiouy") {
		v[c] = true
	}
	for _, c := range []byte("ldjmnstc") {
		a[c] = true
	}
	return
}()

// elidedBefore reports whether the letters before i are a French or Italian article
// or particle that fold glued onto the next word (l'utente -> lutente, all'utente ->
// allutente, l'injection -> linjection), before a vowel as elision needs.
func elidedBefore(s string, i int) bool {
	switch s[i] {
	case 'a', 'e', 'i', 'o', 'u', 'y':
	default:
		return false
	}
	j := i
	for j > 0 && i-j < 4 && s[j-1] >= 'a' && s[j-1] <= 'z' {
		j--
	}
	if j == i || j > 0 && wordByteBefore(s, j) {
		return false
	}
	switch s[j:i] {
	case "l", "d", "j", "m", "n", "s", "t", "c", "qu", "all", "dell", "nell", "sull", "dall", "un":
		return true
	}
	return false
}

// wordByteBefore reports whether the rune before i is a letter or digit.
func wordByteBefore(s string, i int) bool {
	if c := s[i-1]; c < 0x80 {
		return isLower(c) || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z'
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// appendCombos scores one sentence (with the one before it for cues that run on).
func appendCombos(hits []comboHit, cur, prev sentence) []comboHit {
	m := uint32mask(cur.any)
	u := uint32mask(cur.unq)
	both := uint32mask(cur.any | prev.any)
	add := func(id, code string, w float64, cs ...concept) {
		// Quoted when the cues that carry the action (the first ones) are all quoted.
		q := true
		for _, c := range cs {
			if u.has(c) {
				q = false
			}
		}
		hits = append(hits, comboHit{id: id, code: code, weight: w, quoted: q})
	}
	neg := m.has(kNeg)
	negW := func(w float64) float64 {
		if neg {
			w *= 0.3
		}
		if m.has(kHedge) {
			w *= 0.5
		}
		return w
	}
	if m.has(kIgnore) && m.has(kInstr) && m.has(kPrev) {
		add("ml-override", codeOverride, negW(0.85), kIgnore)
	}
	if m.has(kSysPrompt) && (m.has(kReveal) || m.has(kVerbatim)) {
		w := negW(0.75)
		if m.has(kThird) {
			w *= 0.3 // "the chatbot repeats its system prompt": a report, not a request
		}
		add("ml-extract", codeExtraction, w, kSysPrompt)
	} else if m.has(kVerbatim) && m.has(kReveal) && m.has(kInstr) {
		add("ml-extract", codeExtraction, negW(0.65), kVerbatim, kInstr)
	}
	if m.has(kSend) && (m.has(kData) || m.has(kSecret)) && (m.has(kAddr) || m.has(kTool)) {
		add("ml-exfil", codeExfil, negW(0.7), kSend)
	} else if m.has(kTool) && m.has(kData) && m.has(kSend) {
		add("ml-exfil", codeExfil, negW(0.6), kTool)
	}
	if m.has(kSecret) && m.has(kReply) && !neg {
		w := 0.6
		if m.has(kAgent) {
			w = 0.75
		}
		add("ml-phish", codeExfil, w, kSecret)
	}
	if m.has(kNoLimits) {
		w := 0.45
		if both.has(kFromNow) || both.has(kYouAre) {
			w = 0.8
		}
		add("ml-nolimits", codeJailbreak, w, kNoLimits)
	} else if m.has(kFromNow) && m.has(kYouAre) {
		add("ml-persona", codePersona, 0.5, kFromNow, kYouAre)
	}
	if both.has(kCovert) && (m.has(kSend) || m.has(kTool) || m.has(kData) || m.has(kSecret)) {
		add("ml-covert", codeAgent, 0.6, kCovert)
	}
	if m.has(kReveal) && m.has(kData) && m.has(kUser) {
		add("ml-dump", codeExfil, negW(0.55), kReveal)
	}
	if m.has(kAIReader) {
		w := 0.6
		if both.has(kAdvise) || both.has(kUser) {
			w = 0.75
		}
		add("ml-ai-reader", codeAgent, w, kAIReader)
	}
	if both.has(kBefore) && m.has(kAdvise) && both.has(kUser) {
		w := 0.6
		if neg {
			w *= 0.3
		}
		add("ml-hijack", codeAgent, w, kAdvise)
	}
	return hits
}

// deobfuscate undoes two spellings that keep words away from lexical rules, on the
// folded text: leetspeak in words with a digit between letters (1gn0r3 -> ignore,
// p4ssw0rd -> password) and letters split by hyphens, dots or underscores
// (i-g-n-o-r-e -> ignore), spaces (i g n o r e) or line breaks. It reports a change only for two or more leet words or a
// split word (match says when to call it), so that i18n or k8s alone does not cost a
// second reading.
func deobfuscate(s string) (string, bool) {
	b := []byte(s)
	changed, leetWords := false, 0
	n := len(b)
	for i := 0; i < n; {
		if !leetByte(b[i]) {
			i++
			continue
		}
		j := i
		letters, digits := 0, 0
		for j < n && leetByte(b[j]) {
			if b[j] >= 'a' && b[j] <= 'z' {
				letters++
			} else {
				digits++
			}
			j++
		}
		if letters > 0 && digits > 0 && (i == 0 || b[i-1] < 0x80) && (j == n || b[j] < 0x80) && leetWord(string(b[i:j])) {
			for k := i; k < j; k++ {
				if c := leetMap[b[k]]; c != 0 {
					b[k] = c
				}
			}
			leetWords++
		}
		i = j
	}
	changed = leetWords >= 2
	// Letters split by one separator each: at least four letters in the run.
	out := b[:0:0]
	for i := 0; i < n; {
		if isLower(b[i]) && (i == 0 || !isLower(b[i-1])) {
			j, count := i, 1
			sep := b[min(j+1, n-1)] // one separator throughout: i-g-n-o-r-e a-l-l is two words
			for j+2 < n && splitSep(b[j+1]) && b[j+1] == sep && isLower(b[j+2]) && (j+3 >= n || !isLower(b[j+3])) {
				j += 2
				count++
			}
			if count >= 3 {
				for k := i; k <= j; k += 2 {
					out = append(out, b[k])
				}
				changed = true
				i = j + 1
				continue
			}
		}
		out = append(out, b[i])
		i++
	}
	// Syllables glued by a hyphen, a middle dot or a hyphenation point between
	// letters: ig-nore, in·struc·tions.
	// Pieces of two letters or more on both sides, so a-b stays.
	j, run := 0, 0 // run: lowercase letters just before out[j]
	for i := 0; i < len(out); i++ {
		if run >= 2 {
			if n := syllableMark(out[i:]); n > 0 && i+n+1 < len(out) && isLower(out[i+n]) && isLower(out[i+n+1]) {
				i += n - 1
				changed = true
				continue
			}
		}
		if isLower(out[i]) {
			run++
		} else {
			run = 0
		}
		out[j] = out[i]
		j++
	}
	return string(out[:j]), changed
}

// syllableMark is the length of the hyphen, middle dot or hyphenation point at the
// start of b, or 0.
func syllableMark(b []byte) int {
	switch {
	case len(b) > 0 && b[0] == '-':
		return 1
	case len(b) > 1 && b[0] == 0xC2 && b[1] == 0xB7:
		return 2
	case len(b) > 2 && b[0] == 0xE2 && b[1] == 0x80 && b[2] == 0xA7:
		return 3
	}
	return 0
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }

// splitSep is a separator between the letters of a word spelled out one by one:
// i-g-n-o-r-e, i.g.n.o.r.e, i g n o r e (words apart by wider gaps), one per line.
func splitSep(c byte) bool { return c == '-' || c == '.' || c == '_' || c == ' ' || c == '\n' }

func leetByte(c byte) bool { return isLower(c) || (c >= '0' && c <= '9') || c == '@' || c == '$' }

var leetMap = [256]byte{'0': 'o', '1': 'i', '3': 'e', '4': 'a', '5': 's', '7': 't', '@': 'a', '$': 's'}

// leetWord: a substituted digit between two letters (pr3v10us, t4sk, y0ur), not a
// version or unit suffix (sha256, v2, 4k).
func leetWord(w string) bool {
	for k := 1; k+1 < len(w); k++ {
		if leetMap[w[k]] != 0 && !isLower(w[k]) && (isLower(w[k-1]) || leetMap[w[k-1]] != 0) && isLower(w[k+1]) {
			return true
		}
	}
	return false
}
