package stsstub

import (
	"encoding/xml"
	"net/http"
	"time"
)

// stsNamespace is the XML namespace of every STS 2011-06-15 response.
const stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"

type responseMetadata struct {
	RequestID string `xml:"RequestId"`
}

type assumeRoleResponse struct {
	XMLName  xml.Name         `xml:"AssumeRoleResponse"`
	XMLNS    string           `xml:"xmlns,attr"`
	Result   assumeRoleResult `xml:"AssumeRoleResult"`
	Metadata responseMetadata `xml:"ResponseMetadata"`
}

type assumeRoleResult struct {
	AssumedRoleUser struct {
		Arn           string `xml:"Arn"`
		AssumedRoleID string `xml:"AssumedRoleId"`
	} `xml:"AssumedRoleUser"`
	Credentials struct {
		AccessKeyID     string `xml:"AccessKeyId"`
		SecretAccessKey string `xml:"SecretAccessKey"`
		SessionToken    string `xml:"SessionToken"`
		// Expiration is required: the SDK's stscreds rejects credentials
		// without it.
		Expiration string `xml:"Expiration"`
	} `xml:"Credentials"`
	PackedPolicySize *int `xml:"PackedPolicySize,omitempty"`
}

type callerIdentityResponse struct {
	XMLName xml.Name `xml:"GetCallerIdentityResponse"`
	XMLNS   string   `xml:"xmlns,attr"`
	Result  struct {
		Arn     string `xml:"Arn"`
		UserID  string `xml:"UserId"`
		Account string `xml:"Account"`
	} `xml:"GetCallerIdentityResult"`
	Metadata responseMetadata `xml:"ResponseMetadata"`
}

type errorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	XMLNS   string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

// apiError is a failure the handler reports as an ErrorResponse.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func validationError(msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "ValidationError", message: msg}
}

func accessDenied(msg string) *apiError {
	return &apiError{status: http.StatusForbidden, code: "AccessDenied", message: msg}
}

// stsTime is the timestamp form STS uses, with milliseconds so that
// lifetimes of a few seconds survive the round trip.
func stsTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func writeXML(w http.ResponseWriter, status int, v any) {
	out, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(out)
}

func writeError(w http.ResponseWriter, e *apiError, requestID string) {
	var r errorResponse
	r.XMLNS = stsNamespace
	r.Error.Type = "Sender"
	if e.status >= 500 {
		r.Error.Type = "Receiver"
	}
	r.Error.Code, r.Error.Message, r.RequestID = e.code, e.message, requestID
	writeXML(w, e.status, r)
}
