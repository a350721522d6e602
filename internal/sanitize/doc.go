// Package sanitize scrubs what a node sends: it finds secrets and PII in
// outbound bytes and applies the peer's Policy to each finding, so that no
// value a policy protects leaves the machine.
//
// # Guarantee
//
// Apply is the only way to make a non-empty Clean, and a Clean holds bytes in
// which every finding was redacted, pseudonymized or explicitly allowed; a
// finding whose action is block makes Apply fail with *BlockedError, which
// names categories and never values. A sending path that accepts only a Clean
// therefore cannot send unscrubbed bytes. Reports (counts per category and
// action) never hold values either.
//
// # Detectors
//
//   - Secrets: gitleaks' default rule set (v8.30.1, 221 content rules) with
//     its keywords, entropy thresholds and allowlists; plus this package's
//     format checks for the providers of testdata/corpus/README.md, PEM
//     private key blocks (redacted bodies and public keys excluded), JWTs
//     (header must decode to JSON), passwords in URL userinfo, and values
//     assigned to keys that name a secret (password, passwd, secret, token,
//     api_key, Bearer ...), in JSON, YAML (block scalars too), .env, CLI
//     flags, `key value` lines (.netrc, one entry per line too; an AWS secret
//     after its name; a qualifier before a password word, REDIS_CACHE_PASSWORD,
//     does not veto it as it does after one, PASSWORD_FILE),
//     prose ("the password is", and a password noun in 38 languages before a
//     colon or a linking word), mysql's -pSECRET,
//     curl's -u user:SECRET, sshpass -p SECRET, SQL's PASSWORD 'SECRET',
//     IDENTIFIED BY 'SECRET' and SET PASSWORD = 'SECRET', and table columns: CSV,
//     semicolon CSV, TSV and Markdown tables whose header names the column. Placeholders (YOUR_API_KEY_HERE,
//     ${DB_PASSWORD}, ********, EXAMPLE keys, xxxx runs) are not secrets.
//   - PII, each with a validator: email (domain and TLD checked; UTF-8
//     local parts; Latin letters with diacritics in domain labels; not message identifiers in Message-ID, In-Reply-To,
//     References), phone
//     (E.164, NANP, trunk-0 national; bare digits only next to a phone word),
//     payment card (brand prefix and Luhn), IBAN (country length and mod 97; letters in
//     any case; compact, or in groups of four after spaces, dashes, tabs or
//     JSON \t escapes, kinds mixed; with a dash or a tab every group is set
//     off and no dashed piece glued on, so a UUID is never one; a separator
//     inside the first four characters, two in a row or " - " is not
//     caught; Unicode dashes and minus signs are, through the decoded view),
//     US SSN (area, group, serial ranges; nine bare digits only with SSN
//     context), IPv4 and IPv6 (parsed).
//   - Nested encodings: base64 and hex runs of 16 bytes or more, and base32
//     runs (RFC 4648, one case throughout, padded or not) of 16 bytes or more,
//     that decode to text (UTF-8; for base64 and hex also UTF-16 in either
//     byte order, as PowerShell's -EncodedCommand is) or to gzip or zlib
//     (inflated up to 16 times its size) are decoded and scanned; a finding inside marks the whole run. A
//     run glued to a path or a name by a separator in its first 21 bytes
//     (/api/v1/..., x-..., token_...) is decoded from after the separator when
//     it does not decode whole. A decoded view is scanned too: JSON \u00XX and
//     \/ escapes (and \uXXXX, surrogate pairs too, for the characters below),
//     URL percent-encoding applied once or twice (with the quotes, braces and
//     spaces around a value, so q=%7B%22api_key%22%3A... keeps its key), HTML
//     character references, a spelled-out [at] and [dot] (also (at), {at};
//     only when the input holds one), the forms NFKC folds to ASCII
//     (fullwidth, mathematical letters and digits, circled letters, small @ .
//     : -) and Arabic-Indic, Persian and Devanagari digits decoded; invisible
//     characters dropped (zero-width characters and joiners, bidi marks,
//     embeddings and isolates, invisible operators, variation selectors, tag
//     characters, CGJ, fillers, soft hyphen); no-break, typographic and
//     ideographic spaces, underscores and + between digits read as spaces,
//     hyphens, dashes and minus signs between digits as -, and dots between
//     digit groups of known shapes (four and four, 3.2.4 SSN, 4.6.5 and 4.6.4
//     cards, an IBAN in fours) as spaces. A finding counts there when a
//     decoded character lies inside it or up to 32 bytes before it (a key name
//     spelled with an escape). Text in other scripts opens a view only where
//     an invisible character touches an ASCII value character or six digits of
//     another script run together.
//   - A value split across lines of one string (a newline, \r\n or a JSON
//     \n escape, the next line indented or not): the text around a break
//     between two pieces of a value (each with a digit or an @, or eight
//     characters long) is scanned with the break removed (a space between
//     digit groups, over any number of lines: a card in fours on four lines).
//     A card over three lines or more needs a card word (card, visa, amex,
//     mastercard, cvv, expiry, Kreditkarte, tarjeta..., or cc, pan, exp as
//     words of their own) within 64 bytes before it or 32 after: a column of
//     four-digit years or amounts joins Luhn-valid one time in ten. "number"
//     alone is no card word, being a column header as often.
//     A break before a key (id=, TAG:) or a timestamp is not
//     joined, and a join that only glues a word onto a value found whole on
//     its line is dropped.
//   - Hex in separated pairs (de:ad:be:ef:..., DE-AD-..., de.ad..., one separator,
//     16 pairs or more, so never a MAC address or an IPv6 address): when it
//     decodes to text, follows a key word within 128 bytes, or the node has
//     canaries, the input is scanned again with the runs joined, and a
//     finding on a joined run marks the whole run.
//   - Cookie and Set-Cookie headers (plain, in JSON, escaped, curl
//     --cookie and -b; read whole, however long): the value of a
//     session-like cookie (sess, auth, token, csrf, login, remember..., a
//     name ending in sid) when it has a token-like piece (not a time, a
//     count, a path or a locale), and any cookie value that looks random
//     (16+ characters, letters and digits, high entropy, not hex alone, a
//     UUID or a=1&b=2 fields); names and Set-Cookie attributes stay.
//   - Passwords in URL userinfo also with an empty user
//     (redis://:pw@host); a query string's value ends at the next
//     parameter.
//   - The node's own secrets (Config.Canaries: its identity key, the
//     operator's sanitize.canaries) by exact value, as is and in hex, base64
//     (both alphabets, any padding, any alignment inside a longer payload),
//     base32 (either case, any alignment), URL and JSON escapes, also
//     where line breaks split them anywhere or lookalike letters of other
//     scripts spell them: CategoryCanary, which blocks under every policy.
//     Values the vault holds for any peer are found as whole words in the
//     same forms and take their category, so a value pseudonymized for one
//     peer is not sent in clear to another in a form the detectors miss.
//   - PEM private key blocks of every algorithm and length (16 base64
//     characters of key material suffice), with or without their END line,
//     and treaty's identity.key format; JSON Web Keys' private members (d, p,
//     q, dp, dq, qi, k) and PuTTY key files' private lines. The signature
//     of an Azure SAS URL (sig= next to sv=) and a Discord webhook's token.
//
// One literal prefilter (an Aho-Corasick automaton over every gitleaks
// keyword and this package's trigger words) finds the places worth looking
// at; regexes run only there (see glMode), and only where the input's first
// bytes can start a match (prefixSets), and the PII detectors are
// hand-written byte scanners.
//
// Findings are byte offsets into the input, sorted and non-overlapping:
// overlapping findings merge into one that spans them, keeping the most
// specific category (a provider format beats a generic assignment, a secret
// beats PII).
//
// # JSON
//
// Detection reads raw bytes, so keys, values and JSON nested inside strings
// (escaped quotes) are all scanned, and key names give context. When the
// input is valid JSON the output is too: a replacement never crosses a string
// boundary or splits an escape, and a number is replaced by a string.
//
// # Pseudonyms
//
// A pseudonym is "<category:" + 12 hex digits of HMAC-SHA256(PseudonymKey,
// peer, category, value) + ">": deterministic per peer, different across
// peers. The node keeps the mapping (in memory and optionally in VaultPath)
// and Restore puts values back for the peer they were issued to, re-escaped
// for the JSON string they land in.
//
// # Limits
//
//   - Detection is by format and context. A secret with no known format and
//     no telling key, or PII without a checkable shape (names, street
//     addresses), passes. Encoded runs shorter than 16 bytes of payload,
//     runs glued to more than 21 bytes of a name or path, or to a word
//     without a separator, mixed-case base32, a value split across fields or messages, and a
//     variable-length value whose first line already matches its format
//     (only that part is found) are out of reach. Deliberate exfiltration
//     through a cipher (reversal, rot13, splitting) is out of reach:
//     capability policy is the control for an agent that means to leak.
//   - A gitleaks rule runs only near its keywords. For the 215 rules whose
//     every match contains a keyword this finds what gitleaks finds; the six
//     others run on the whole input whenever a keyword occurs, as in
//     gitleaks. TestGitleaksParity checks the runner against gitleaks'
//     detector on testdata/corpus. Matches are cut at 4 KiB (the PEM and
//     JWT detectors here read whole blocks), gitleaks' private-key rule is
//     left to the PEM detector (same blocks, same ranges), and the four
//     rules gitleaks applies only to named files (.tf, .yaml, .php,
//     nuget.config) run on every message, which has no file name.
//   - Restore escapes a value for one level of JSON string; inside a JSON
//     string nested in another, a value with quotes or backslashes comes back
//     escaped once.
//   - The vault is bounded per peer (VaultLimits: 100000 entries, 30 days
//     since last use by default). A full peer loses its least recently used
//     entry, whose token is then no longer restored (docs/adr/0008). The
//     file is append-only between compactions, written to the OS on each
//     write and synced on Close.
//
// # Time
//
// Scan, Apply and DryRun are linear in their input (TestSanitizeLinear);
// their Context forms stop when the caller's context ends and return
// ErrDeadline, so a call's deadline bounds the work.
package sanitize
