package graph

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Graph's error codes and messages, as the real service sends them (sources in
// shared/reference/microsoft-protocol-facts.md §4 and the issue threads cited there). Those marked
// UNVERIFIED are plausible but not quoted from a capture.
const (
	codeInvalidToken = "InvalidAuthenticationToken"
	msgTokenEmpty    = "Access token is empty."
	msgTokenExpired  = "Lifetime validation failed, the token is expired."
	msgBadAudience   = "Access token validation failure. Invalid audience."
	msgTokenInvalid  = "Access token validation failure."
	msgNotJWT        = "IDX14100: JWT is not well formed, there are no dots (.).\nThe token needs to be in JWS or JWE Compact Serialization Format. (JWS): 'EncodedHeader.EndcodedPayload.EncodedSignature'. (JWE): 'EncodedProtectedHeader.EncodedEncryptedKey.EncodedInitializationVector.EncodedCiphertext.EncodedAuthenticationTag'."

	codeAccessDenied = "ErrorAccessDenied"
	msgAccessDenied  = "Access is denied. Check credentials and try again."
	msgODataDisabled = "Access to OData is disabled."

	codeItemNotFound = "ErrorItemNotFound"
	msgItemNotFound  = "The specified object was not found in the store."

	codeInvalidUser = "ErrorInvalidUser" // 404, "The requested user '…' is invalid."

	codeIDMalformed = "ErrorInvalidIdMalformed"
	msgIDMalformed  = "Id is malformed."

	codeWrongMailbox = "ErrorInvalidMailboxItemId" // UNVERIFIED status (404)
	msgWrongMailbox  = "Item Id doesn't belong to the current mailbox."

	codeBadRequest  = "BadRequest"
	msgMeAppOnly    = "/me request is only valid with delegated authentication flow."
	msgBadJSON      = "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format."
	msgEmptyPayload = "Empty Payload. JSON content expected." // UNVERIFIED

	codeSyncStateNotFound = "SyncStateNotFound"

	codeThrottled = "ApplicationThrottled"
	msgThrottled  = "Application is over its MailboxConcurrency limit."

	codeUnavailable = "serviceNotAvailable" // errors doc spelling; UNVERIFIED message
	msgUnavailable  = "The service is temporarily unavailable. Please try again later."

	codeInvalidBase64 = "ErrorMimeContentInvalidBase64String"
	msgInvalidBase64  = "Invalid base64 string for MIME content."
	codeMimeInvalid   = "ErrorMimeContentInvalid" // UNVERIFIED
	msgMimeInvalid    = "The MIME content is invalid."

	codeInvalidRecipients = "ErrorInvalidRecipients"
	msgNoRecipients       = "At least one recipient isn't valid., A message can't be sent because it contains no recipients."

	codeSendAsDenied = "ErrorSendAsDenied"
	msgSendAsDenied  = "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message."

	codeInvalidParameter = "ErrorInvalidParameter" // UNVERIFIED
	codeInvalidHeader    = "InvalidInternetMessageHeader"
	codeNotImplemented   = "NotImplemented" // the emulator's own
)

// graphError is Graph's error body.
type graphError struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code       string     `json:"code"`
	Message    string     `json:"message"`
	InnerError innerError `json:"innerError"`
}

type innerError struct {
	Date            string `json:"date"`
	RequestID       string `json:"request-id"`
	ClientRequestID string `json:"client-request-id"`
}

// apiError is an error answer on its way to the client.
type apiError struct {
	status     int
	code       string
	message    string
	retryAfter int // seconds; 0: no Retry-After header
}

func (e *apiError) Error() string { return strconv.Itoa(e.status) + " " + e.code + ": " + e.message }

func errorf(status int, code, message string) *apiError {
	return &apiError{status: status, code: code, message: message}
}

func notFound() *apiError { return errorf(http.StatusNotFound, codeItemNotFound, msgItemNotFound) }

func invalidUser(user string) *apiError {
	return errorf(http.StatusNotFound, codeInvalidUser, "The requested user '"+user+"' is invalid.")
}

// writeError writes Graph's error JSON, with request-id, date and client-request-id in innerError.
func writeError(w http.ResponseWriter, now time.Time, reqID, clientReqID string, e *apiError) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if e.status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`)
	}
	if e.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	body := graphError{Error: errorBody{Code: e.code, Message: e.message, InnerError: innerError{
		Date: now.UTC().Format("2006-01-02T15:04:05"), RequestID: reqID, ClientRequestID: clientReqID}}}
	w.WriteHeader(e.status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(body) // the client hung up; nothing to do
}

// graphAudience reports whether aud names Microsoft Graph.
func graphAudience(aud string) bool {
	switch strings.TrimSuffix(strings.ToLower(aud), "/") {
	case "https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000":
		return true
	}
	return false
}
