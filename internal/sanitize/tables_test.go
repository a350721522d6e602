package sanitize

import (
	"strings"
	"testing"
)

// Forms found missing on the held-out corpus (testdata/corpus/README.md):
// the column header, the line above or the sentence says what a value is.
func TestDetectContextForms(t *testing.T) {
	aws := fake(101, alnum, 19) + "/" + fake(102, alnum, 10) + "+" + fake(103, alnum, 9)
	key := fake(104, alnum, 32)
	pw := fake(105, alnum, 9) + "7#"
	runDetect(t, []detectCase{
		{"TSV column", "id\tname\tSecret access key\tcreated\n1\tAna\t" + aws + "\t2026-01-02\n", CategoryAWSSecretKey, aws},
		{"semicolon CSV column", "id;name;API key;created\n1;Ana;" + key + ";2026-01-02\n", CategoryGenericAPIKey, key},
		{"Markdown table column", "| id | name | Client secret | created |\n|---|---|---|---|\n| 1 | Ana | " + key + " | 2026-01-02 |\n", CategoryGenericAPIKey, key},
		{"Markdown table password", "| user | Password |\n| --- | --- |\n| ana | " + pw + " |\n", CategoryPasswordAssignment, pw},
		{"CSV SSN column undashed", "name,SSN\nAna,123456789\n", CategoryUSSSN, "123456789"},
		{"not a table value: other column", "id;name;API key\n" + key + ";Ana;x\n", "", key},
		{"YAML block scalar", "secret_access_key: >-\n    " + aws + "\nregion: x\n", CategoryAWSSecretKey, aws},
		{"CLI positional", "aws configure set aws_secret_access_key " + aws + "\n", CategoryAWSSecretKey, aws},
		{".netrc password", "machine api.example.com\n  login ana\n  password " + pw + "\n", CategoryPasswordAssignment, pw},
		{"not netrc: sentence", "the password reset1 worked\n", "", "reset1"},
		{"mysql -p'…'", "mysql -h db -u root -p'" + pw + "' shop\n", CategoryPasswordAssignment, pw},
		{"mysql -p glued", "mysqldump -uroot -p" + pw + " shop > x.sql\n", CategoryPasswordAssignment, pw},
		{"not mysql: -P port", "mysql -h db -P 3306 shop\n", "", "3306"},
		{"Spanish prose", "la contraseña es: " + pw + "\n", CategoryPasswordAssignment, pw},
		{"German prose, no colon", "das Passwort lautet " + pw + " (bitte ändern)", CategoryPasswordAssignment, pw},
		{"Russian", "пароль: " + pw, CategoryPasswordAssignment, pw},
		{"Chinese", "密码是：" + pw, CategoryPasswordAssignment, pw},
		{"Arabic", "كلمة المرور هي: " + pw, CategoryPasswordAssignment, pw},
		{"not prose password: no digit, no colon", "la contraseña cambió ayer", "", "ayer"},
		{"not prose password: the word in a URL's userinfo", "dsn: postgres://user:password@localhost:5432/mydb", "", "5432/mydb"},
		{"not prose password: placeholder", "mot de passe : ********", "", "********"},
		{"SSN on the line below its label", "{\"type\": \"us_ssn\",\n \"value\": \"123 45 6789\"}", CategoryUSSSN, "123 45 6789"},
		{"not SSN: nine digits two lines below", "ssn policy\nnothing\n\"value\": \"123456789\"", "", "123456789"},
		{"phone (NXX) NXX.XXXX", "Tel. (415) 555.0142", CategoryPhone, "(415) 555.0142"},
		{"not AWS secret: documented example", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
	})
}

// Many header-like lines must not make the table detector quadratic: every
// byte is looked at as a header at most once.
func TestTableHeadersLinear(t *testing.T) {
	s := newTest(t)
	row := "token;secret;password;api key\n"
	small := []byte(strings.Repeat(row, (64<<10)/len(row)))
	big := []byte(strings.Repeat(row, (1<<20)/len(row)))
	ts, tb := minTime(3, func() { s.Scan(small) }), minTime(2, func() { s.Scan(big) })
	if r := float64(tb) / float64(ts); r > maxLinearRatio {
		t.Errorf("1 MiB of table headers took %.1fx the time of 64 KiB, want <= %v", r, maxLinearRatio)
	}
}
