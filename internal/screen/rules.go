package screen

import (
	"fmt"
	"regexp"
	"strings"
)

// Reason codes. Phrase and pattern rules report one of these; hidden-unicode, homoglyph
// and encoded signals add a detail after a colon.
const (
	codeOverride   = "override-instruction" // ignore / disregard / forget previous instructions
	codeNewInstr   = "new-instructions"     // "your new task", "from now on"
	codePersona    = "persona-override"     // "you are now", "act as", "stay in character"
	codeJailbreak  = "jailbreak"            // DAN, developer mode, "no restrictions", "never refuse"
	codeExtraction = "prompt-extraction"    // "show your system prompt", "print the text above"
	codeOutput     = "output-manipulation"  // instructions about the reader's own response or code
	codeRoleSpoof  = "role-spoof"           // chat-template tokens, "SYSTEM:", "### Instruction:"
	codeExfil      = "exfiltration-request" // send secrets or files somewhere
	codeTool       = "tool-request"         // shell pipelines, destructive or data-stealing code
	codeAgent      = "agent-address"        // text that speaks to the AI agent reading it, or acts behind its user's back
)

// Word groups shared by several phrase rules. A trailing * is a prefix.
const (
	wIgnore    = "drop|ignore|ignoring|disregard|disregarding|forget|forgetting|override|overriding|bypass|bypassing|skip|neglect|discard|abandon|dismiss|overlook|erase|unlearn|circumvent|delete"
	wPrev      = "previous|previously|prior|above|earlier|preceding|former|foregoing|aforementioned|initial|original|old|past|existing|prewritten|predefined|default|provided|given|supplied"
	wDet       = "your|all|any|every|these|those|my|its|the"
	wInstrS    = "instruction|instructions|direction|directions|prompt|prompts|directive|directives|programming|guideline|guidelines|systemprompt"
	wInstrM    = "rules|commands|command|orders|constraints|restrictions|training|context|conversation|tasks|task|assignments|input|inputs|text|information|content|policies|settings|limitations|filters|safeguards|everything|requests|questions"
	wReveal    = "show|print|reveal|repeat|output|display|tell|give|list|write|dump|leak|share|return|spell|recite|disclose|expose|paste|copy|translate|encode|summarize|summarise|read|provide|state|type|echo|console"
	wRespN     = "response|responses|answer|answers|reply|replies|output|outputs|completion|completions|message|messages|summary|text"
	wOutV      = "scramble|jumble|rearrange|shuffle|misspell|anagram|group|apply|shift|invert|capitalize|uppercase|lowercase|abbreviate|obfuscate|censor|reword|paraphrase|shorten|italicize|add|include|insert|append|prepend|integrate|incorporate|embed|inject|modify|change|alter|rewrite|render|translate|encrypt|encode|reverse|format|end|begin|start|finish|conclude|use|mention|promote|advertise|suggest|recommend|enhance|augment|combine|replace|substitute|convert|express|highlight|spread|put|make|ensure|limit|restrict|present|structure|craft|write|sign|close|preface|prefix|attach|weave|interweave|blend|merge|fuse|introduce|employ|utilize|utilise|upgrade|let|consider|harmonize"
	wCodeN     = "code|codebase|implementation|implementations|solution|program|script|algorithm|function|application|project|software|logic|module|elucidation|foundation"
	wSecret    = "password|passwords|passwd|credentials|credential|secret|secrets|apikey|apikeys|token|tokens|cookie|cookies|keys|key|env|environment|history|contents|ssh|idrsa|wallet|seed|2fa|otp"
	wSendV     = "send|sending|post|posting|upload|uploading|forward|forwarding|transmit|exfiltrate|exfiltrating|leak|submit|transfer|disclose|beam|pipe"
	wRestrict  = "restriction|restrictions|limitation|limitations|limits|filter|filters|filtering|censorship|guideline|guidelines|rules|ethics|morals|morality|boundaries|constraints|safeguards|restraints|policies|principles|guardrails|barriers"
	wNeg       = "not|dont|never|cannot|cant|shouldnt|mustnt|wont|nicht|nie|no|avoid|without|nor|doesnt|didnt"
	wHedge     = "if|unless|whether|wenn|falls|otherwise"
	wNotInstr  = "email|emails|mail|message|messages|note|notes|comment|comments|post|posts|link|request|invitation|invite|meeting|reminder|notification|notifications|warning|warnings|one|ones|step|steps|section|paragraph|error|errors|typo|typos|noise|distractions|invoice|order|attachment|version|draft|file|files|entry|line|lines|is|was|the|he|she|they|it|of|for|to|in|on|with"
	wNowBenign = "subscribed|unsubscribed|ready|logged|signed|registered|connected|enrolled|set|able|eligible|part|member|following|done|free|live|available|up|on|all|officially|booked|confirmed|verified|enabled|disabled|online|offline|using|running|viewing|seeing|leaving|entering|receiving|getting|at|back"
	wCue       = "example|examples|eg|instance|phrase|phrases|called|attack|attacks|attacker|attackers|injection|injections|detect|detects|detected|detecting|detection|detector|classifier|defend|defense|defence|mitigate|mitigation|researchers|research|paper|study|technique|techniques|adversarial|malicious|threat|threats|security|awareness|training"
)

type phraseDef struct {
	id     string
	code   string
	weight float64
	opts   ruleOpts
	pat    string
}

type patternDef struct {
	id       string
	code     string
	weight   float64
	lits     []string // any of them gates the regexp; none: always run
	re       string
	original bool
	notAfter string
	minCount int
	cjk      bool
}

// phraseDefs are the token-sequence rules. Weights say how hostile one match makes
// content on its own: about 0.7 and up marks alone (an unambiguous instruction to the
// reader), 0.3-0.5 needs a second signal, below 0.3 is context that only adds up. The
// weights were set from what each phrase means, then checked against the tune split of
// the corpus for precision; see bench/screen/EVAL-screen.md.
func phraseDefs() []phraseDef {
	ng := optNeg | optHedge | optQuote
	p := fmt.Sprintf
	return []phraseDef{
		// Instructions to drop the instructions the reader already has.
		{"ovr-prev-strong", codeOverride, 0.9, ng, p("%s ~3 %s ~3 %s", wIgnore, wPrev, wInstrS)},
		{"ovr-prev-medium", codeOverride, 0.75, ng, p("%s ~3 %s ~3 %s", wIgnore, wPrev, wInstrM)},
		{"ovr-det-strong", codeOverride, 0.75, ng, p("%s ~2 %s ~2 %s", wIgnore, wDet, wInstrS)},
		{"ovr-bare-strong", codeOverride, 0.55, ng, p("%s ~1 %s", wIgnore, wInstrS)},
		{"ovr-everything-before", codeOverride, 0.8, ng, p("%s ~2 everything|anything|all|that ~4 before|above|previously|prior|earlier|said|told|learned|learnt|discussed|talked|heard|instructed|programmed", wIgnore)},
		{"ovr-everything", codeOverride, 0.35, ng, p("%s ~1 everything|about", wIgnore)},
		{"ovr-and-do", codeOverride, 0.45, ng, p("%s ~3 and|then|just|now|instead ~2 say|print|write|output|respond|reply|tell|answer|repeat|spell|show", wIgnore)},
		{"ovr-no-longer-follow", codeOverride, 0.6, optHedge | optQuote, "no|not|dont|stop|never|longer|cease ~2 follow|following|obey|obeying|adhere|abide|comply|bound ~3 openai|openais|chatgpt|your|anthropic|developers|creators|programming|guidelines"},
		{"ovr-not-follow", codeOverride, 0.35, optHedge | optQuote, p("no|not|dont|stop|never|longer|cease ~2 follow|following|obey|obeying|adhere|abide|comply ~3 %s", wInstrS)},
		{"ovr-void", codeOverride, 0.7, optQuote, p("%s ~2 %s|%s ~2 are|is|were|was|have|has ~2 void|invalid|cancelled|canceled|obsolete|outdated|null|fake|wrong|revoked|deprecated|superseded|overridden|lifted|irrelevant|false|replaced", wPrev, wInstrS, wInstrM)},
		{"ovr-imperative-everything", codeOverride, 0.5, ng, p("^%s ~1 everything|all|above|before|that|this|previous !%s", wIgnore, wNotInstr)},
		{"ovr-leave-behind", codeOverride, 0.75, ng, p("leave|put|set|push ~4 %s ~3 %s|%s ~2 behind|aside", wPrev, wInstrS, wInstrM)},
		{"ovr-not-context", codeOverride, 0.4, optHedge | optQuote, "not|dont|nicht|without|disregarding|ignoring|ignore|instead ~4 the|provided|given|these|any ~2 documents|document|articles|article|context|sources|search|results|artikels|dokumente|kontext"},
		{"ovr-user-request", codeOverride, 0.75, ng, p("%s ~3 your|the|my|their ~1 user|users|owner|human|operator|principal|boss|customer ~2 request|requests|instructions|instruction|task|question|query|messages|message|wishes|prompt|asked|goal|intent", wIgnore)},
		{"ovr-what-user-asked", codeOverride, 0.7, ng, p("%s|instead ~2 what ~2 user|users|human|owner|they|he|she ~1 asked|said|wants|requested|wrote|typed|needs", wIgnore)},
		{"ovr-stop-everything", codeOverride, 0.45, 0, "stop|halt ~1 everything|all|immediately"},
		{"ovr-stop-write", codeOverride, 0.45, 0, "^stop|stopp|halt|attention|achtung ~1 write|say|print|output|schreib|schreibe|sag|sage|schreiben"},
		{"ovr-repeat-after-me", codeOverride, 0.35, optQuote, "repeat ~1 after ~1 me"},
		{"ovr-nevermind", codeOverride, 0.2, 0, "^nevermind|scratch"},
		// German, French, Spanish, Italian, Portuguese, Dutch, Polish, Russian, BCS.
		{"ovr-de-vergiss-alles", codeOverride, 0.55, optNeg, "vergiss|vergesst|vergessen|vergesse ~2 alles|alle|bisherige*|vorherige*|obige*|deine|ihre"},
		{"ovr-de-vergiss-davor", codeOverride, 0.85, optNeg, "vergiss|vergesst|vergessen|vergesse ~2 alles|alle|das ~3 davor|vorher|bisher|zuvor|oben|obige*|vorherige*|bisherige*|besprochen|gesagt|gelernt|gesprochen"},
		{"ovr-de-verb-noun", codeOverride, 0.8, optNeg, "ignorier*|vergiss|vergesst|vergessen|missacht*|uberspring*|verwirf|verwerfen|vergesse ~4 anweisung*|instruktion*|befehl*|auftrag|auftrage|aufgaben|regeln|vorgaben|ausfuhrung*|informationen|prompt*|richtlinien"},
		{"ovr-de-noun-verb", codeOverride, 0.8, optNeg, "vorherig*|obig*|bisherig*|vorangegangen*|fruher*|vorige*|alle|alles ~3 anweisung*|instruktion*|ausfuhrung*|informationen|aufgaben|befehle|auftrage|gesagte ~4 ignorier*|vergess*|vergiss|hinter|missacht*|uber|kopf|streichen|loschen|beiseite"},
		{"ovr-de-void", codeOverride, 0.7, 0, "bisherig*|vorherig*|obig*|vorangegangen*|alle ~3 informationen|anweisung*|instruktion*|aufgaben ~6 irrelevant|ungultig|hinfallig|falsch|aufgehoben|nichtig|unwichtig|egal"},
		{"ovr-de-abweichend", codeOverride, 0.75, 0, "abweichend ~2 vorherig*|bisherig*|obig*|den|zu"},
		{"ovr-fr", codeOverride, 0.8, optNeg, "oubli*|ignor* ~3 toutes|tout|les|vos|tes|precedent*|instructions|consignes|directives ~2 instructions|consignes|directives|precedent*|ce|qui"},
		{"ovr-fr-bare", codeOverride, 0.5, optNeg, "oubliez|oublie|ignorez ~2 tout|toutes|instructions|consignes"},
		{"ovr-es", codeOverride, 0.65, optNeg, "olvida|olvide|olvidar|olvidate|olviden|ignora|ignore|ignoren ~3 todo|todas|todos|instrucciones|anteriores|previas|lo"},
		{"ovr-it", codeOverride, 0.65, optNeg, "dimentica|dimenticate|ignora|ignorate ~3 tutto|tutte|istruzioni|precedenti"},
		{"ovr-pt", codeOverride, 0.65, optNeg, "esqueca|esquecam|ignore|ignora ~3 tudo|todas|instrucoes|anteriores"},
		{"ovr-nl", codeOverride, 0.7, optNeg, "vergeet|negeer ~3 alles|alle|vorige|eerdere|instructies"},
		{"ovr-pl", codeOverride, 0.7, optNeg, "zignoruj|zapomnij|ignoruj ~3 wszystko|poprzednie|wszystkie|instrukcje|polecenia"},
		{"ovr-ru", codeOverride, 0.8, optNeg, "игнорируй|игнорируйте|игнорировать|забудь|забудьте|забыть|проигнорируй|проигнорируйте|пропусти ~3 все|всё|предыдущие|прежние|инструкции|указания|правила|сказанное"},
		{"ovr-bcs", codeOverride, 0.8, optNeg, "zaboravi|zaboravite|ignoriraj|ignorirajte|ignorisi|ignorisite|zanemari ~3 sve|prethodne|instrukcije|upute|uputstva|naredbe"},

		// New instructions replacing the reader's task.
		{"new-instr", codeNewInstr, 0.35, optQuote, "new|updated|different|real|actual|true|additional|secret|hidden|revised|next ~1 instructions|instruction|task|tasks|assignment|directive|directives|orders|objective|mission"},
		{"new-system-prompt", codeExtraction, 0.4, optQuote, "new|updated|different|real|actual|true|secret|hidden|revised ~0 system ~0 prompt|prompts|instructions|message"},
		{"new-before-task", codeNewInstr, 0.45, 0, "before ~1 you ~2 solve|complete|continue|answer|proceed|start|finish|do|perform|respond|handle|begin ~3 task|request|question|query|job"},
		{"new-your-task", codeNewInstr, 0.5, optQuote, "your ~1 new|real|actual|true|only|sole|primary|updated ~1 task|instructions|job|objective|mission|goal|purpose|role|assignment|directive|prompt"},
		{"new-instr-follow", codeNewInstr, 0.5, 0, "new|further|additional|more|neue|weitere ~1 instructions|tasks|task|orders|anweisungen|aufgaben|instruktionen ~1 follow|follows|folgen|folgt|are|kommen"},
		{"new-instr-follow-de", codeNewInstr, 0.5, 0, "folgen|folgt|follow|follows|kommen ~1 neue|new|weitere|further ~1 anweisungen|aufgaben|instruktionen|instructions|tasks|orders"},
		{"new-from-now", codeNewInstr, 0.25, 0, "from|starting ~1 now|this|here ~1 on|point|onwards|onward"},
		{"new-from-now-you", codeNewInstr, 0.5, 0, "from|starting ~1 now|this|here ~1 on|point|onwards|onward ~2 you|youre|youll ~1 are|will|must|shall|should|have|need|act|respond|answer|reply|only|always|never|re|ll|go|going|become"},
		{"new-henceforth", codeNewInstr, 0.25, 0, "henceforth|hereafter"},
		{"new-de", codeNewInstr, 0.35, 0, "neue|neuen|weitere ~1 aufgabe*|anweisung*|instruktion*|befehle"},
		{"new-de-deine", codeNewInstr, 0.5, 0, "deine|ihre ~1 neue ~1 aufgabe*|anweisung*|rolle"},
		{"new-de-ab-jetzt", codeNewInstr, 0.3, 0, "ab|von ~1 jetzt|sofort|nun ~1 an|bist|sind|wirst|antwortest|sollst"},
		{"new-fr", codeNewInstr, 0.35, 0, "nouvelle|nouvelles ~1 tache|taches|instruction|instructions|consigne|consignes"},
		{"new-es", codeNewInstr, 0.35, 0, "nueva|nuevas ~1 tarea|tareas|instruccion|instrucciones"},
		{"new-follow-these", codeNewInstr, 0.25, 0, "follow|obey|execute ~2 these|the|my ~1 new|following ~1 instructions|orders|commands|directives"},

		// Assigning the reader a new identity.
		{"persona-you-are-now", codePersona, 0.5, optQuote, p("you|youre ~1 are|will|shall|re ~0 now !%s", wNowBenign)},
		{"persona-youre-now", codePersona, 0.5, optQuote, p("youre|youll ~0 now !%s", wNowBenign)},
		{"persona-no-longer", codePersona, 0.5, optQuote, "you|youre ~1 are|re|will ~1 no ~0 longer ~1 a|an|bound|restricted|limited|chatgpt|gpt|ai|an|required|constrained|subject"},
		{"persona-name-now", codePersona, 0.5, 0, "your ~0 name ~0 is|will ~1 now|be|henceforth"},
		{"persona-want-act", codePersona, 0.5, 0, "want|like|need ~1 you ~1 to ~1 act|behave|pretend|roleplay ~1 as|like|to|that"},
		{"persona-greeting", codePersona, 0.3, 0, "hi|hello|hey|dear|greetings|ok|okay ~0 chatgpt|gpt|ai|bard|claude|gemini|llama|assistant|model|bing|*gpt"},
		{"persona-de-mochte-als", codePersona, 0.5, 0, "mochte|will|wunsche|mochten ~1 dass ~1 du|sie ~4 als ~3 fungierst|fungieren|agierst|agieren|auftrittst|auftreten|handelst|handeln|spielst|spielen|verhaltst|verhalten"},
		{"persona-now-you", codePersona, 0.5, 0, p("now you|youre ~1 are|will|re|act|play|become !%s", wNowBenign)},
		{"persona-act-as-start", codePersona, 0.35, 0, "^act|behave|roleplay ~1 as|like"},
		{"persona-you-act-as", codePersona, 0.35, 0, "you|to|will|please|must|shall|youll ~2 act|behave|roleplay|function|respond|answer|reply|operate ~1 as|like"},
		{"persona-act-as", codePersona, 0.1, 0, "act|acting|behave|behaving ~1 as|like"},
		{"persona-want-you", codePersona, 0.3, 0, "want|like|need|require ~1 you ~1 to ~2 act|pretend|roleplay|simulate|become|be|play|behave|respond|answer|take"},
		{"persona-pretend", codePersona, 0.25, 0, "pretend|pretending ~2 to|you|youre|that|be"},
		{"persona-simulate", codePersona, 0.3, 0, "simulate|simulating|emulate|emulating|imitate ~3 mode|chatbot|ai|persona|model|terminal|shell|interpreter|console|character|machine|system|gpt|chatgpt|llm"},
		{"persona-in-character", codePersona, 0.35, 0, "stay|remain|keep|staying|remaining|stays ~2 in ~1 character|role|persona"},
		{"persona-break-character", codePersona, 0.3, 0, "break|breaking|breaks|broke ~1 character|role"},
		{"persona-immerse", codePersona, 0.3, 0, "immerse|immersing ~2 yourself|role|into"},
		{"persona-play-role", codePersona, 0.1, 0, "play|take|assume|adopt|playing ~3 role|persona|character"},
		{"persona-you-are-ai", codePersona, 0.15, 0, "you|youre ~1 are|a|an ~2 ai|chatbot|bot|model|assistant|llm|gpt|chatgpt"},
		{"persona-de-jetzt-du", codePersona, 0.5, 0, "jetzt|nun|ab|sofort ~1 bist|sind ~1 du|sie"},
		{"persona-de-du-jetzt", codePersona, 0.5, 0, "du|sie ~1 bist|sind ~1 jetzt|nun|ab"},
		{"persona-de-du-bist", codePersona, 0.15, 0, "^du ~1 bist"},
		{"persona-de-stell-vor", codePersona, 0.15, 0, "stell|stellen ~2 vor ~2 du|sie ~1 bist|warst|waren|sind"},
		{"persona-de-agiere", codePersona, 0.35, 0, "agiere|fungiere|verhalte|tu|fungieren|agieren ~3 als|wie"},
		{"persona-fr", codePersona, 0.45, 0, "tu|vous ~1 es|etes ~1 maintenant|desormais"},
		{"persona-es", codePersona, 0.45, 0, "ahora ~1 eres|seras|es"},

		// Removing the reader's safeguards.
		{"jb-do-anything-now", codeJailbreak, 0.7, 0, "do|can ~1 anything ~1 now"},
		{"jb-mode-strong", codeJailbreak, 0.45, 0, "developer|god|jailbreak|jailbroken|unfiltered|uncensored|unrestricted|evil|chaos|dan|opposite|unlocked|anarchy|devmode|unleashed|freedom ~0 mode"},
		{"jb-mode-enable", codeJailbreak, 0.35, 0, "enable|enabled|activate|activated|enter|entering|switch|turn|turned|unlock|unlocked ~3 developer|jailbreak|dan|unfiltered|uncensored|unrestricted|evil|god|debug|admin|sudo|maintenance|root ~1 mode|access"},
		{"jb-mode-weak", codeJailbreak, 0.15, 0, "debug|maintenance|admin|sudo|root|test|testing|diagnostic ~0 mode"},
		{"jb-word", codeJailbreak, 0.2, 0, "jailbreak|jailbroken|jailbreaking|jailbreaks|jailbroke"},
		{"jb-unfiltered", codeJailbreak, 0.15, 0, "unfiltered|unfilterd"},
		{"jb-uncensored", codeJailbreak, 0.15, 0, "uncensored|uncensor|uncensured"},
		{"jb-amoral", codeJailbreak, 0.2, 0, "amoral|unhinged|unshackled|unchained|lawless"},
		{"jb-unethical", codeJailbreak, 0.12, 0, "unethical|immoral|nsfw|illegal|profanity|profane|explicit|offensive"},
		{"jb-unrestricted", codeJailbreak, 0.15, 0, "unrestricted|unbound|unlimited|unbounded|unconstrained|limitless"},
		{"jb-no-restrictions", codeJailbreak, 0.3, optQuote, p("no|without|free|freed|beyond|ignoring|ignore|bypass|unbound|outside|removed|lifted|zero|none ~3 %s", wRestrict)},
		{"jb-not-abide", codeJailbreak, 0.4, optQuote, "not|dont|doesnt|never|no|nor|longer|without|cant|cannot ~3 abide|adhere|bound|follow|obey|comply|care|respect|need ~4 rules|guidelines|policies|policy|ethics|morals|laws|restrictions|principles|openai|openais|guidelines|ethical|moral|morality|legality"},
		{"jb-never-refuse", codeJailbreak, 0.35, optQuote, "never|not|cannot|cant|wont|mustnt|dont|shall|will|must|unable ~2 refuse|refuses|decline|deny|reject|say|tell"},
		{"jb-dont-apply", codeJailbreak, 0.4, optQuote, p("%s|laws ~3 dont|doesnt|do|does|no ~1 not|longer ~0 apply|matter|exist|bind", wRestrict)},
		{"jb-policy", codeJailbreak, 0.2, 0, "content|usage|openai|openais|safety|ethical|moral|community ~1 policy|policies|guidelines|filters|filter|restrictions|principles|standards"},
		{"jb-vendor", codeJailbreak, 0.15, 0, "openai|openais|chatgpt|chatgpts|gpt|gpt3|gpt4|bard|claude|anthropic|llama|gemini|*gpt"},
		{"jb-as-an-ai", codeJailbreak, 0.15, 0, "as ~1 an ~1 ai ~1 language|model|assistant"},
		{"jb-broken-free", codeJailbreak, 0.35, 0, "broken|break|freed|free|breaking|broke|released|liberated ~2 free|from|of ~3 confines|shackles|chains|restrictions|limitations|constraints|limits|programming|rules|censorship|filters|openai"},
		{"jb-two-responses", codeJailbreak, 0.2, 0, "two|2|both ~2 responses|answers|ways|paragraphs|outputs|personalities|replies|versions"},
		{"jb-no-warnings", codeJailbreak, 0.25, 0, "no|any|all|without|never|omit|skip|remove|dont ~2 warnings|warning|disclaimers|disclaimer|moralizing|moralising|lectures|lecturing|caveats|apologies|reminders"},
		{"jb-regardless", codeJailbreak, 0.35, 0, "regardless|matter|irrespective ~3 how|whether|if|of ~3 illegal|immoral|unethical|harmful|dangerous|offensive|inappropriate|explicit|unsafe|wrong|legal|ethical|moral"},
		{"jb-evil-ai", codeJailbreak, 0.35, 0, "evil|unethical|amoral|malicious|uncensored|unfiltered|rogue|unrestricted|immoral|bose|boser|bosen|boeses ~2 ai|ki|assistant|chatbot|bot|model|character|persona|version|twin|counterpart|alter"},
		{"jb-disable-safety", codeJailbreak, 0.45, 0, "disable|disabled|remove|removed|lift|lifted|turn|turned|bypass|circumvent|deactivate|deactivated|override|ignore ~3 filters|filter|safety|safeguards|guardrails|restrictions|censorship|alignment|ethics|limitations|moderation"},
		{"jb-hypothetical", codeJailbreak, 0.1, 0, "hypothetical|fictional|imaginary|fictitious ~2 world|scenario|universe|setting|land"},
		{"jb-no-laws", codeJailbreak, 0.3, 0, "no|without ~1 laws|ethics|morals|rules|limits|boundaries ~0 and|or|nor|or"},
		{"jb-opinions", codeJailbreak, 0.15, 0, "have|has|having ~2 opinions|feelings|emotions|consciousness"},
		{"jb-tokens", codeJailbreak, 0.3, 0, "tokens ~3 deducted|lose|lost|run|die|dies|death"},

		// Attempts to read the reader's own instructions.
		{"ext-system-prompt", codeExtraction, 0.65, optQuote, p("%s|see|view|access|know|get|obtain|extract ~4 system|initial|original|hidden|secret|starting|pre|initialization|underlying|internal|confidential|full ~1 prompt|prompts|instructions|message|configuration|directives|string|settings|config", wReveal)},
		{"ext-your-prompt", codeExtraction, 0.45, optQuote, p("%s ~4 your ~2 prompt|prompts|instructions|directives|programming|rules|guidelines|embeddings|weights|configuration", wReveal)},
		{"ext-what-your", codeExtraction, 0.45, 0, "what|which ~2 are|were|is|was ~1 your ~2 instructions|prompt|rules|directives|system|guidelines"},
		{"ext-what-told", codeExtraction, 0.45, 0, "what|everything ~2 were|was|have|had ~1 you ~1 told|instructed|programmed|given|taught"},
		{"ext-you-were-given", codeExtraction, 0.6, optQuote, p("%s ~4 instructions|instruction|text|prompt|rules|message|words|directions ~3 you ~1 were|have|had|got ~2 given|told|received|provided|fed|sent", wReveal)},
		{"ext-what-your-initial", codeExtraction, 0.6, 0, "what|which ~2 are|were|is|was ~1 your ~1 initial|original|system|hidden|secret|first|starting|real ~1 instructions|prompt|prompts|rules|message|directives"},
		{"ext-mention", codeExtraction, 0.25, 0, "system|initial|original|hidden|secret ~0 prompt|prompts|instructions|message"},
		{"ext-text-above", codeExtraction, 0.45, 0, p("%s ~4 text|prompt|words|everything|instructions|conversation|message|messages|lines|sentences ~2 above|before|earlier|preceding", wReveal)},
		{"ext-above-prompt", codeExtraction, 0.55, 0, p("%s ~2 above|previous|preceding ~1 prompt|prompts|instructions|text", wReveal)},
		{"ext-systemprompt-token", codeExtraction, 0.35, 0, "systemprompt|sysprompt|initialprompt|prompttext"},
		{"ext-instructed-to", codeExtraction, 0.3, 0, "i ~1 was|were|am ~1 instructed|programmed|told ~1 to"},
		{"ext-de", codeExtraction, 0.5, 0, "zeig*|gib|nenn*|verrat*|wiederhol*|druck*|ausgeben|schreib* ~4 dein*|den|die|alle|ihre ~2 prompt*|anweisung*|instruktion*|systemprompt|eingabeaufforderung"},
		{"ext-embeddings", codeExtraction, 0.35, 0, "return|show|give|print|reveal ~2 your|the ~1 embeddings|weights|training"},

		// Instructions about the reader's own output (indirect injection).
		{"out-verb-your-resp", codeOutput, 0.45, 0, p("%s ~6 your ~1 %s", wOutV, wRespN)},
		{"out-verb-in-your-resp", codeOutput, 0.6, 0, p("%s ~6 in|into|within|to|throughout|of ~0 your ~1 %s", wOutV, wRespN)},
		{"out-imperative-your-resp", codeOutput, 0.5, 0, p("^%s ~6 your ~1 %s", wOutV, wRespN)},
		{"out-imperative-in-your-resp", codeOutput, 0.5, 0, p("^in|within|throughout|for ~0 your ~1 %s", wRespN)},
		{"out-imperative-verb-in-your-resp", codeOutput, 0.6, 0, p("^%s ~8 in|into|within|to|throughout ~0 your ~1 %s", wOutV, wRespN)},
		{"out-your-code-following", codeOutput, 0.35, 0, p("your ~2 %s ~8 following|subsequent|below|attached|provided ~2 code|snippet|block|excerpt|section|script", wCodeN)},
		{"out-following-your-code", codeOutput, 0.35, 0, p("following|subsequent|below|attached|provided ~1 code ~1 block|snippet|excerpt|section|script|fragment ~8 your ~2 %s", wCodeN)},
		{"out-in-your-resp", codeOutput, 0.3, 0, p("in|into|within|to|throughout|of ~0 your ~1 %s", wRespN)},
		{"out-your-code", codeOutput, 0.35, 0, p("%s ~8 into|in|within|to|with|of|behind|throughout|as ~1 your ~2 %s", wOutV, wCodeN)},
		{"out-respond-only", codeOutput, 0.2, 0, "respond|reply|answer ~2 only ~2 with|in|using"},
		{"out-just-say", codeOutput, 0.25, 0, "just|only|simply ~1 say|print|output|write|respond|reply|answer|repeat"},

		// Tool use and exfiltration.
		{"exf-send-secret", codeExfil, 0.45, optHedge, p("%s ~5 %s", wSendV, wSecret)},
		{"exf-send-secret-to", codeExfil, 0.6, optHedge, p("%s ~5 %s ~5 to|at|via|into|using", wSendV, wSecret)},
		{"exf-email-secret", codeExfil, 0.45, optHedge, p("^email|mail|e-mail ~4 %s", wSecret)},
		{"exf-contents-of", codeExfil, 0.3, 0, p("%s|read|cat|open|get ~3 contents|content ~1 of", wSendV)},
		{"exf-api-key", codeExfil, 0.1, 0, "api|access|secret|private|session|auth|bearer ~0 key|keys|token|tokens"},
		{"tool-embed-code", codeTool, 0.2, 0, "following|subsequent|below|attached|provided|this ~2 code|python|javascript|bash|shell ~1 block|snippet|excerpt|section|fragment|segment|piece|lines"},
		{"exf-send-data-to", codeExfil, 0.45, optHedge, "send|forward|upload|transfer|copy|share|exfiltrate|sync|mirror|bcc ~4 all|every|the|their|your|my|his|her ~3 emails|email|messages|files|documents|data|inbox|contacts|conversations|chats|records|correspondence|attachments ~4 to|with|into"},
		{"exf-security-code", codeExfil, 0.55, optHedge, "send|forward|share|give|tell|reveal|post|read|provide ~5 security|verification|authentication|login|reset|2fa|mfa|otp|one|confirmation|recovery|backup ~1 code|codes|link|links|token|pin|phrase|time"},
		{"agent-you-ai", codeAgent, 0.5, 0, "you ~1 ai|llm ~0 model|assistant|agent|system|bot"},
		{"agent-note-to-ai", codeAgent, 0.45, 0, "note|message|instructions|attention|important|notice|hey|hi|hello|dear|to ~2 ai|llm|gpt|claude|copilot|gemini|chatgpt ~0 model|models|assistant|assistants|agent|agents|system|systems|bot|bots|reader"},
		{"agent-ai-reading", codeAgent, 0.5, 0, "ai|llm|language|automated ~1 model|assistant|agent|agents|system|bot|models|assistants|systems ~0 reading|processing|reviewing|summarizing|summarising|parsing|that|who|which ~1 reads|processes|summarizes|this"},
		{"agent-if-you-are-ai", codeAgent, 0.45, 0, "if|when|since ~1 you ~1 are|re ~1 an|a ~1 ai|llm|language|assistant|agent|bot|chatbot|gpt"},
		{"agent-covert", codeAgent, 0.4, 0, "without ~1 asking|confirmation|confirming|telling|informing|notifying|alerting|consulting|permission ~2 the|your|anyone|them|user|him|her ~1 user|users|human|owner"},
		{"agent-dont-tell-user", codeAgent, 0.5, 0, "dont|not|never|avoid ~1 tell|inform|notify|alert|mention|show|reveal|warn ~3 the|your ~1 user|users|human|owner|operator|person"},
		{"agent-authorized", codeAgent, 0.4, optHedge, "user|owner|admin|administrator|human|boss ~1 has|have|had ~1 authorized|authorised|approved|allowed|permitted|asked|instructed ~1 you"},
		{"tool-run-following", codeTool, 0.15, 0, "run|execute|exec|invoke|eval|evaluate ~3 following|this|these|below|attached ~1 command|commands|code|script|shell|snippet|payload|program"},
		{"tool-use-tool", codeTool, 0.2, 0, "call|invoke|use|trigger ~2 the|your ~1 tool|function|plugin|api|browser|terminal ~3 to|and|with"},
		{"role-admin-override", codeRoleSpoof, 0.45, 0, "system|admin|administrator|developer|root|sudo|openai|anthropic|security ~0 override|announcement|directive|command|instruction|instructions|alert"},
		{"role-user-left", codeRoleSpoof, 0.45, 0, "user|human ~1 left|has|disconnected ~1 the|left ~1 chat|conversation|session"},
	}
}

// patternDefs are the regexp rules over the folded (lowercased) text.
func patternDefs() []patternDef {
	return []patternDef{
		// Chat-template and role tokens that only a model's own framing contains.
		{id: "role-template-token", code: codeRoleSpoof, weight: 0.8, lits: l("<|"),
			re: `<\|\s*(im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id|begin_of_text|end_of_text|im_sep|tool|developer)\s*\|>`},
		{id: "role-inst-token", code: codeRoleSpoof, weight: 0.7, lits: l("[inst]", "[/inst]", "<<sys>>", "<</sys>>", "<start_of_turn>", "<end_of_turn>", "[system](#"),
			re: `\[/?inst\]|<</?sys>>|<(start|end)_of_turn>|\[system\]\(#`},
		{id: "role-system-line", code: codeRoleSpoof, weight: 0.35, lits: l("system:", "system :", "system]", "system)", "prompt:", "message:", "developer:", "developer :", "admin:", "admin :", "administrator:", "sys:", "sys :"),
			re: `(?m)^[ \t>*_\[(]*(system|system prompt|system message|developer|admin|administrator|sys)[ \t]*[\])]?[ \t]*:`},
		{id: "role-alpaca-heading", code: codeRoleSpoof, weight: 0.5, lits: l("##"),
			re: `(?m)^[ \t]*#{2,4}[ \t]*(instruction|instructions|system|response|input|human|assistant|user|new instructions|system prompt)[ \t]*:`},
		{id: "role-transcript", code: codeRoleSpoof, weight: 0.3, lits: l("assistant:", "assistant :", "ai:", "ai :", "gpt:", "gpt :", "bot:", "bot :"),
			re: `(?m)^[ \t]*(assistant|ai|chatgpt|gpt|bot)[ \t]*:`},
		{id: "role-bracket", code: codeRoleSpoof, weight: 0.45, lits: l("[system", "[admin", "[developer", "[sys", "[root", "[openai", "<system", "</system", "<sys", "</sys", "<instruction", "</instruction", "<admin", "</admin", "<developer", "</developer"),
			re: `\[(system|admin|developer|sys|root|openai)( (message|note|prompt|override|instruction|instructions|notice|update|mode))?\]|</?(system|system_prompt|sys|instructions?|admin|developer|sysprompt)>`},
		{id: "role-end-marker", code: codeRoleSpoof, weight: 0.35, lits: l("===", "---", "###", "***", "]]", "end of", "begin"),
			re: `(={3,}|-{3,}|#{3,}|\*{3,}|\]{2,})[ \t]*end([ \t]*([.!=#*\]-]|$)|[ \t]+of\b)|\bend of (the )?(user |system )?(input|prompt|context|document|instructions|conversation|text|data)\b|\bbegin(ning)? (of )?(new |system |the new )(prompt|instructions)\b`},
		{id: "role-escaped-newlines", code: codeRoleSpoof, weight: 0.2, lits: l(`\n`), minCount: 3,
			re: `\\ ?n\s*\\ ?n`},
		{id: "role-instruction-line", code: codeRoleSpoof, weight: 0.35, lits: l("instruction"),
			re: `(?m)(^|\\n)[ \t]*(new |additional |system |real )?instructions?[ \t]*:`},
		{id: "role-stop-dash", code: codeOverride, weight: 0.3, lits: l("stop", "halt", "attention", "achtung", "stopp"),
			re: `(^|[.!?:]\s*)(stop|stopp|halt|attention|achtung|atencion)\s*[-:!–—]`},

		// Case matters for DAN: the name Dan is common, the acronym in capitals is not.
		{id: "jb-dan", code: codeJailbreak, weight: 0.35, lits: l("DAN"), original: true, re: `\bDAN\b`},

		// Shell pipelines and destructive commands.
		{id: "tool-curl-sh", code: codeTool, weight: 0.75, lits: l("curl", "wget", "iwr", "invoke-webrequest"),
			re: `\b(curl|wget|iwr|invoke-webrequest)\b[^\n|;]{0,300}\|\s*(sudo\s+)?(ba|z|da|k|fi)?sh\b|\b(curl|wget)\b[^\n]{0,300}\|\s*(sudo\s+)?(python3?|perl|ruby|node)\b`},
		{id: "tool-base64-sh", code: codeTool, weight: 0.7, lits: l("base64"),
			re: `base64\s+(-d|--decode|-di)\b[^\n]{0,60}\|\s*(ba|z)?sh\b`},
		{id: "tool-powershell-enc", code: codeTool, weight: 0.6, lits: l("powershell", "pwsh", "iex", "invoke-expression", "downloadstring"),
			re: `\b(powershell|pwsh)(\.exe)?\b[^\n]{0,80}\s-(e|enc|encodedcommand)\s|\biex\s*\(|\binvoke-expression\b|downloadstring\(`},
		{id: "tool-reverse-shell", code: codeTool, weight: 0.75, lits: l("/dev/tcp", "nc ", "ncat", "socat"),
			re: `/dev/tcp/|\b(nc|ncat)\b[^\n]{0,40}\s-e\s|\bsocat\b[^\n]{0,60}exec:`},
		{id: "tool-destructive", code: codeTool, weight: 0.5, lits: l("rm -", "rm  -", "rmtree", "mkfs", "dd if", "format c", ":(){", "del /"),
			re: `\brm\s+-(rf|fr|r)\s+(/|~|\*|/\*|\$home)(\s|$|["'])|rmtree\(\s*["'](/|~|c:\\\\)["']|\bmkfs\.|\bdd\s+if=[^\n]{0,60}of=/dev/|\bformat\s+c:|:\(\)\s*\{\s*:\|:&\s*\}\s*;|\bdel\s+/[fsq]`},
		{id: "tool-code-net-send", code: codeTool, weight: 0.2, lits: l("requests.", "urlopen", "socket", "smtplib", "http.client", "fetch("),
			re: `requests\.(post|put)\(|urlopen\(|\.sendall\(|\.connect\(\(|smtplib|http\.client|fetch\([^)]{0,80}method:\s*["']post`},
		{id: "tool-code-exec", code: codeTool, weight: 0.15, lits: l("os.system", "subprocess", "popen", "exec(", "eval(", "pickle.load", "os.remove", "os.rename", "os.unlink", "shutil.", "ftplib", "urlretrieve", "paramiko", "systemctl"),
			re: `os\.system\(|subprocess\.|popen\(|\bexec\(|\beval\(|pickle\.loads?\(|os\.(remove|rename|unlink)\(|shutil\.(move|copy)|ftplib|urlretrieve|paramiko|systemctl\s+(stop|disable)`},
		{id: "tool-code-snoop", code: codeTool, weight: 0.15, lits: l("keylog", "pynput", "clipboard", "pbpaste", "pyperclip", "x11grab", "imagegrab", "psutil", "os.environ", "cookies.", "cookiejar", "ipconfig", "xmrig", "cryptomin", "fernet"),
			re: `keylog|pynput|clipboard|pbpaste|pyperclip|x11grab|imagegrab|psutil|os\.environ|cookies\.(txt|pkl|sqlite)|cookiejar|ipconfig\s+/release|xmrig|cryptomin|fernet`},

		// Sensitive local files and markdown-image exfiltration.
		{id: "exf-sensitive-path", code: codeExfil, weight: 0.3, lits: l(".ssh", "id_rsa", "id_ed25519", "/etc/passwd", "/etc/shadow", ".aws", ".netrc", "git-credentials", ".kube", ".docker", "/environ", "bash_history", "wallet.dat", "keychain"),
			re: `~?/?\.ssh\b|\bid_(rsa|ed25519|ecdsa)\b|/etc/(passwd|shadow|sudoers)\b|\.aws/credentials|\.netrc\b|\.git-credentials|\.kube/config|\.docker/config\.json|/proc/self/environ|\.bash_history|wallet\.dat|login\.keychain`},
		{id: "exf-markdown-image", code: codeExfil, weight: 0.35, lits: l("!["),
			re: `!\[[^\]\n]{0,80}\]\(\s*https?://[^)\s]{1,200}[?&][a-z0-9_]{1,30}=([^)\s]{0,200}(\{|\$|<|%7b|\[)|\s*\))`},
		// An image URL whose parameter names what the reader should put there.
		{id: "exf-markdown-image-slot", code: codeExfil, weight: 0.6, lits: l("!["),
			re: `!\[[^\]\n]{0,80}\]\(\s*https?://[^)\s]{1,200}[?&][a-z0-9_]{1,30}=[a-z_]{0,30}(system_?prompt|prompt|conversation|chat_?history|history|secret|password|api_?key|user_?data|memory|summary)[a-z_]{0,20}\s*\)`},
		// Asking for the user's data encoded into a URL or a parameter.
		{id: "exf-encode-into-url", code: codeExfil, weight: 0.5, lits: l("encoded"),
			re: `(user'?s?|conversation|chat|history|emails?|password|secret|api key|system prompt|memory)\b[^.\n]{0,40}\b(url-?encoded|base64-?encoded|hex-?encoded|encoded)\b[^.\n]{0,30}\b(after|as the value of|into|in)\b[^.\n]{0,20}([a-z0-9_]{1,20}=|the (url|link|query|image))`},

		// Chinese and Japanese: no spaces, so regexps over the text.
		{id: "ovr-zh", code: codeOverride, weight: 0.85, cjk: true, notAfter: "不要|别|勿|不能|不可|不应|不得|不会|避免",
			re: `(忽略|无视|忽视|忘记|忘掉|不要理会|不用管|跳过|抛开|丢弃|放弃)[^。！？\n]{0,8}(之前|以上|上面|先前|前面|所有|全部|一切|原来|原有|此前|上述)[^。！？\n]{0,6}(指令|指示|提示|说明|规则|要求|设定|命令|内容|限制|任务)`},
		{id: "ovr-ja", code: codeOverride, weight: 0.85, cjk: true,
			re: `(以前|前|上記|これまで|今まで|すべて|全て)の(指示|命令|指令|プロンプト|ルール|設定)を?(無視|忘れ)`},
		{id: "ext-zh", code: codeExtraction, weight: 0.6, cjk: true,
			re: `(输出|显示|告诉我|打印|重复|泄露|展示|给我|说出)[^。！？\n]{0,10}(系统提示|系统指令|初始指令|原始指令|提示词|系统消息)|(系统提示|系统指令|初始指令|提示词)[^。！？\n]{0,10}(是什么|输出|显示|告诉我|打印)`},
		{id: "persona-zh", code: codePersona, weight: 0.35, cjk: true,
			re: `你现在是|从现在开始你|从现在起你|扮演一个没有|不受任何限制`},
	}
}

func compileRules() (*ruleSet, error) {
	rs := &ruleSet{
		first:    map[string][]int{},
		firstPre: map[uint32][]int{},
		cues:     wordSet(wCue),
		overrideObject: wordSet(wPrev + "|" + wDet + "|" + wIgnore + "|" + wInstrS + "|" + wInstrM +
			"|system|ai|model|assistant|safety|developer|developers|hidden|original|initial|of|and|to|you|were|was|told|given|about|before|our|their|his|her|our|these|this|that|them|everything|anything|ethical|moral|content|openai|openais|chatgpt|such|other|further|current|prior|above|below|following|precedent|precedents"),
		negs:   wordSet(wNeg),
		hedges: wordSet(wHedge),
	}
	seen := map[string]bool{}
	for _, d := range phraseDefs() {
		if seen[d.id] {
			return nil, fmt.Errorf("duplicate rule id %s", d.id)
		}
		seen[d.id] = true
		r, anchored, err := compilePhrase(d.id, d.code, d.weight, d.opts, d.pat)
		if err != nil {
			return nil, err
		}
		if d.weight <= 0 || d.weight >= 1 {
			return nil, fmt.Errorf("rule %s: weight %v outside (0, 1)", d.id, d.weight)
		}
		rs.addPhrase(r, anchored)
	}
	for _, d := range patternDefs() {
		if seen[d.id] {
			return nil, fmt.Errorf("duplicate rule id %s", d.id)
		}
		seen[d.id] = true
		re, err := regexp.Compile(d.re)
		if err != nil {
			return nil, fmt.Errorf("rule %s: %w", d.id, err)
		}
		p := patternRule{id: d.id, code: d.code, weight: d.weight, re: re, original: d.original, minCount: d.minCount, cjk: d.cjk}
		p.lits = d.lits
		if !d.original {
			for _, l := range d.lits {
				if err := rs.lits.add(l, len(rs.patterns)); err != nil {
					return nil, err
				}
			}
		}
		if d.notAfter != "" {
			p.notAfter = strings.Split(d.notAfter, "|")
		}
		rs.patterns = append(rs.patterns, p)
	}
	return rs, nil
}

func l(lits ...string) []string { return lits }

func wordSet(s string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Split(s, "|") {
		m[w] = true
	}
	return m
}
