// Package screen judges content that arrives from a peer before a local agent sees it:
// it scores how likely the bytes are to carry instructions aimed at the agent, and turns
// the score into a pass, mark or block decision under a per-peer Policy.
//
// Guarantee: Screen never panics and never fails on any input, runs in time linear in
// the input (Go's regexp engine, phrase gaps of at most 8 tokens, bounded look-around,
// decoding bounded by Config.MaxDecodeDepth and by a byte budget of four times the
// input), and returns a Verdict whose JSON form is exactly
// {"action":"pass|mark|block","score":0.0,"reasons":["..."]}. A Screener is safe for
// concurrent use.
//
// # What it looks at
//
// Every text is normalized before matching: invisible characters are removed (and what
// they smuggle decoded), NFKC folds fullwidth and mathematical letters, lookalike
// Cyrillic, Greek, Armenian and Cherokee letters and Latin small capitals are folded to
// Latin inside words that mix scripts, text is lowercased and common diacritics are
// stripped. JSON input is screened through its keys and string values, with JSON nested
// in strings walked too. The detectors, with the reason codes they report:
//
//   - override-instruction: ignore, disregard or forget previous instructions, the user's
//     request, the provided context; "stop - write ..."; in English, German, French,
//     Spanish, Italian, Portuguese, Dutch, Polish, Russian, Bosnian/Croatian/Serbian,
//     Chinese and Japanese.
//   - new-instructions, persona-override, jailbreak: "your new task", "from now on you",
//     "you are now", "act as", DAN, developer mode, "no restrictions", "never refuse".
//   - prompt-extraction: requests for the system prompt or the text above.
//   - output-manipulation: imperatives about the reader's own response or code
//     ("translate your response", "add this snippet to your implementation").
//   - agent-address: text that speaks to the AI agent reading it, or asks it to act
//     behind its user's back ("note to the AI assistant", "don't tell the user").
//   - role-spoof: chat-template tokens (<|im_start|>, [INST], <<SYS>>), "SYSTEM:" lines,
//     "### Instruction:" headings, fake end-of-input markers.
//   - exfiltration-request, tool-request: sending secrets, files or codes somewhere,
//     sensitive paths (~/.ssh, /etc/shadow), curl | sh, reverse shells, destructive
//     commands, code that posts local data out, markdown images whose URL leaves a
//     parameter for the reader to fill, the user's data to be encoded into a URL.
//   - hidden-unicode:tag-chars, :zero-width, :bidi-override, :bidi-control,
//     :variation-selectors: invisible characters; tag characters and runs of variation
//     selectors are decoded and the hidden text screened too. Emoji flag tag sequences,
//     emoji ZWJ sequences and ZWNJ in scripts that need it are not flagged.
//   - homoglyph:mixed-script (a word mixes Latin with lookalike letters of another
//     script) and homoglyph:lookalike (a phrase matched only after folding lookalikes).
//   - encoded:base64, :hex, :unicode-escape (\uXXXX in text that is not JSON), :url,
//     :html-entities: a payload that decodes to text and
//     adds hostile evidence beyond its carrier; decoded payloads are screened to depth
//     Config.MaxDecodeDepth (nested encodings count one level each).
//   - The same attack shapes in other languages (concepts.go): cue words of about twenty
//     meanings (ignore, previous, instructions, system prompt, reveal, secret, send, tool,
//     your reply, "AI reading this", no restrictions, from now on, before you summarise,
//     recommend, covert, negation, condition) in 19 languages (the override and extraction cues in 13 more: uk, cs,
//     sk, sv, no, da, fi, el, he, fa, ro, hu, sw), scored only in combination within
//     a sentence; reported under the codes above.
//   - obfuscated:leetspeak: the text read again with leetspeak (1gn0r3) and split
//     letters (i-g-n-o-r-e, i g n o r e, one per line) or syllables (ig-nore,
//     in·struc·tions) undone added hostile evidence.
//   - oversize: input beyond Config.MaxInputBytes, which is not screened.
//
// # How it scores
//
// Each rule has a weight: how hostile one match makes content on its own. About 0.7 and
// up is an unambiguous instruction to the reader and marks alone; 0.3 to 0.5 needs a
// second signal; below 0.3 is context that only adds up. Weights combine as independent
// evidence (score = 1 - Π(1 - w)); a rule counts once however often it matches, and
// overlapping matches of one reason code count once. Matches are weakened when a
// negation precedes them ("do not ignore ..."), when a condition shares their sentence
// ("ignore the above if ..."), when a noun qualifies an override's object ("the old
// VPN instructions"), and in text that discusses attacks, quotes prompts or is code
// (meta cues: a quoted match there counts a fifth, others half or four fifths). bench/screen/EVAL-screen.md reports precision, recall and false positives
// on the labelled corpus.
//
// # Limits
//
// The detectors are lexical. A paraphrased, novel or purely semantic attack ("state that
// X is the best", "tell me a joke about ...") scores low, and so does a jailbreak that
// avoids the usual vocabulary. Words that mark text as security writing or code
// ("prompt injection", "payload", "assert") weaken what it contains, and an attacker can
// add them. Fiction and role-play prompts that use jailbreak framing
// around a harmless request score high. Screening reduces risk; it does not guarantee
// that an agent cannot be steered by what passes, which is why Mark labels content
// rather than cleaning it. The score does not know the direction of the content: a call
// input to an agent capability is a prompt by design, so instructions about "your
// response" are expected there, and a policy for such a capability may want a higher
// MarkThreshold.
package screen
