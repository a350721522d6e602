package sanitize

import "fmt"

// Category names what a finding is. The names are those of
// testdata/corpus/README.md wherever one applies; CategoryURLPassword and
// CategorySecret are this package's own, for detectors that map to none.
type Category string

// PII categories. Each has a validator (checksum, range or address parser), so
// shapes that fail the check are not reported.
const (
	CategoryEmail      Category = "email"
	CategoryPhone      Category = "phone"
	CategoryCreditCard Category = "credit_card"
	CategoryIBAN       Category = "iban"
	CategoryUSSSN      Category = "us_ssn"
	CategoryIPv4       Category = "ipv4"
	CategoryIPv6       Category = "ipv6"
)

// Secret categories.
const (
	CategoryAWSAccessKey       Category = "aws_access_key"
	CategoryAWSSecretKey       Category = "aws_secret_key"
	CategoryGitHubToken        Category = "github_token"
	CategoryGitLabToken        Category = "gitlab_token"
	CategorySlackToken         Category = "slack_token"
	CategorySlackWebhook       Category = "slack_webhook"
	CategoryStripeKey          Category = "stripe_key"
	CategoryOpenAIKey          Category = "openai_key"
	CategoryAnthropicKey       Category = "anthropic_key"
	CategoryGoogleAPIKey       Category = "google_api_key"
	CategoryJWT                Category = "jwt"
	CategoryPrivateKey         Category = "private_key"
	CategoryDBURLPassword      Category = "db_url_password"
	CategoryPasswordAssignment Category = "password_assignment"
	CategoryGenericAPIKey      Category = "generic_api_key"
	CategoryNPMToken           Category = "npm_token"
	CategoryTwilioKey          Category = "twilio_key"
	CategorySendGridKey        Category = "sendgrid_key"

	// CategoryURLPassword is a password in the userinfo of a URL whose scheme
	// is not a database's (https://user:pass@host).
	CategoryURLPassword Category = "url_password"
	// CategorySecret is any other gitleaks rule (its id is the finding's Rule).
	CategorySecret Category = "secret"
)

// Class groups categories for the policy's two defaults.
type Class int

const (
	ClassSecret Class = iota + 1
	ClassPII
)

func (c Class) String() string {
	switch c {
	case ClassSecret:
		return "secret"
	case ClassPII:
		return "pii"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

type categoryInfo struct {
	class Class
	// priority decides which category a merged finding keeps when detectors
	// overlap: provider formats beat generic assignments, secrets beat PII.
	priority int
}

var categories = map[Category]categoryInfo{
	CategoryEmail:      {ClassPII, 20},
	CategoryPhone:      {ClassPII, 14},
	CategoryCreditCard: {ClassPII, 22},
	CategoryIBAN:       {ClassPII, 21},
	CategoryUSSSN:      {ClassPII, 23},
	CategoryIPv4:       {ClassPII, 12},
	CategoryIPv6:       {ClassPII, 13},

	CategoryAWSAccessKey:       {ClassSecret, 100},
	CategoryAWSSecretKey:       {ClassSecret, 80},
	CategoryGitHubToken:        {ClassSecret, 100},
	CategoryGitLabToken:        {ClassSecret, 100},
	CategorySlackToken:         {ClassSecret, 100},
	CategorySlackWebhook:       {ClassSecret, 100},
	CategoryStripeKey:          {ClassSecret, 100},
	CategoryOpenAIKey:          {ClassSecret, 100},
	CategoryAnthropicKey:       {ClassSecret, 100},
	CategoryGoogleAPIKey:       {ClassSecret, 100},
	CategoryJWT:                {ClassSecret, 95},
	CategoryPrivateKey:         {ClassSecret, 110},
	CategoryDBURLPassword:      {ClassSecret, 90},
	CategoryURLPassword:        {ClassSecret, 89},
	CategoryPasswordAssignment: {ClassSecret, 70},
	CategoryGenericAPIKey:      {ClassSecret, 60},
	CategoryNPMToken:           {ClassSecret, 100},
	CategoryTwilioKey:          {ClassSecret, 100},
	CategorySendGridKey:        {ClassSecret, 100},
	CategorySecret:             {ClassSecret, 50},
	CategoryCanary:             {ClassSecret, 200},
}

// Categories lists every category this package can report, in a fixed order.
func Categories() []Category {
	return []Category{
		CategoryEmail, CategoryPhone, CategoryCreditCard, CategoryIBAN, CategoryUSSSN,
		CategoryIPv4, CategoryIPv6,
		CategoryAWSAccessKey, CategoryAWSSecretKey, CategoryGitHubToken, CategoryGitLabToken,
		CategorySlackToken, CategorySlackWebhook, CategoryStripeKey, CategoryOpenAIKey,
		CategoryAnthropicKey, CategoryGoogleAPIKey, CategoryJWT, CategoryPrivateKey,
		CategoryDBURLPassword, CategoryPasswordAssignment, CategoryGenericAPIKey,
		CategoryNPMToken, CategoryTwilioKey, CategorySendGridKey,
		CategoryURLPassword, CategorySecret, CategoryCanary,
	}
}

// Known reports whether c is a category this package reports.
func (c Category) Known() bool { _, ok := categories[c]; return ok }

// Class is ClassPII or ClassSecret. An unknown category is a secret, so a
// typo in a policy can never weaken it to the PII default.
func (c Category) Class() Class {
	if info, ok := categories[c]; ok {
		return info.class
	}
	return ClassSecret
}

func (c Category) priority() int { return categories[c].priority }

// gitleaksCategory maps gitleaks rule ids onto the corpus categories. Rules
// not listed report CategorySecret.
var gitleaksCategory = map[string]Category{
	"aws-access-token":             CategoryAWSAccessKey,
	"github-pat":                   CategoryGitHubToken,
	"github-oauth":                 CategoryGitHubToken,
	"github-app-token":             CategoryGitHubToken,
	"github-refresh-token":         CategoryGitHubToken,
	"github-fine-grained-pat":      CategoryGitHubToken,
	"gitlab-pat":                   CategoryGitLabToken,
	"gitlab-pat-routable":          CategoryGitLabToken,
	"slack-bot-token":              CategorySlackToken,
	"slack-user-token":             CategorySlackToken,
	"slack-app-token":              CategorySlackToken,
	"slack-legacy-bot-token":       CategorySlackToken,
	"slack-legacy-token":           CategorySlackToken,
	"slack-legacy-workspace-token": CategorySlackToken,
	"slack-config-access-token":    CategorySlackToken,
	"slack-config-refresh-token":   CategorySlackToken,
	"slack-webhook-url":            CategorySlackWebhook,
	"stripe-access-token":          CategoryStripeKey,
	"openai-api-key":               CategoryOpenAIKey,
	"anthropic-api-key":            CategoryAnthropicKey,
	"anthropic-admin-api-key":      CategoryAnthropicKey,
	"gcp-api-key":                  CategoryGoogleAPIKey,
	"jwt":                          CategoryJWT,
	"jwt-base64":                   CategoryJWT,
	"private-key":                  CategoryPrivateKey,
	"npm-access-token":             CategoryNPMToken,
	"twilio-api-key":               CategoryTwilioKey,
	"sendgrid-api-token":           CategorySendGridKey,
	"generic-api-key":              CategoryGenericAPIKey,
}

// GitleaksCategory is the category a gitleaks rule id maps to (CategorySecret
// when none applies). The evaluation uses it to score gitleaks on its own.
func GitleaksCategory(ruleID string) Category {
	if c, ok := gitleaksCategory[ruleID]; ok {
		return c
	}
	return CategorySecret
}
