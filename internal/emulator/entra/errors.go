package entra

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Error is an Entra ID token-endpoint error: an AADSTS code, the OAuth error, the HTTP status and the
// description (without the "AADSTSnnnn: " prefix and the trace lines, which Write adds).
type Error struct {
	Status      int
	Code        int    // AADSTS number
	OAuthError  string // invalid_client, invalid_grant, ...
	SubError    string // basic_action, consent_required, message_only, bad_token...
	Description string
	Claims      string // a JSON claims challenge (Conditional Access)
}

func (e *Error) Error() string { return fmt.Sprintf("AADSTS%d: %s", e.Code, e.Description) }

// errorBody is the JSON Entra sends with a failed token request.
type errorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes"`
	Timestamp        string `json:"timestamp"`
	TraceID          string `json:"trace_id"`
	CorrelationID    string `json:"correlation_id"`
	ErrorURI         string `json:"error_uri,omitempty"`
	SubError         string `json:"suberror,omitempty"`
	Claims           string `json:"claims,omitempty"`
}

const timestampLayout = "2006-01-02 15:04:05Z"

// body renders the error as Entra does: the description ends with the trace ID, correlation ID and
// timestamp, each after "\r\n".
func (e *Error) body(now time.Time, traceID, correlationID, host string) errorBody {
	ts := now.UTC().Format(timestampLayout)
	return errorBody{
		Error: e.OAuthError,
		ErrorDescription: fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
			e.Code, e.Description, traceID, correlationID, ts),
		ErrorCodes:    []int{e.Code},
		Timestamp:     ts,
		TraceID:       traceID,
		CorrelationID: correlationID,
		ErrorURI:      "https://" + host + "/error?code=" + strconv.Itoa(e.Code),
		SubError:      e.SubError,
		Claims:        e.Claims,
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store, no-cache")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// The errors, with the descriptions Entra sends (reference-error-codes and observed responses).

func errMissingParam(name string) *Error {
	return &Error{Status: 400, Code: 900144, OAuthError: "invalid_request",
		Description: fmt.Sprintf("The request body must contain the following parameter: '%s'.", name)}
}

func errUnsupportedGrant(g string) *Error {
	return &Error{Status: 400, Code: 70003, OAuthError: "unsupported_grant_type",
		Description: fmt.Sprintf("The app requested an unsupported grant type '%s'.", g)}
}

func errMalformedTenant(t string) *Error {
	return &Error{Status: 400, Code: 900023, OAuthError: "invalid_request",
		Description: fmt.Sprintf("Specified tenant identifier '%s' is neither a valid DNS name, nor a valid external domain.", t)}
}

func errTenantNotFound(t, oauthErr string) *Error {
	return &Error{Status: 400, Code: 90002, OAuthError: oauthErr,
		Description: fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", t)}
}

func errAppNotFound(clientID, directory string) *Error {
	return &Error{Status: 400, Code: 700016, OAuthError: "unauthorized_client",
		Description: fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, directory)}
}

func errSingleTenantOnCommon(clientID, name string) *Error {
	return &Error{Status: 400, Code: 50194, OAuthError: "invalid_request",
		Description: fmt.Sprintf("Application '%s'(%s) is not configured as a multi-tenant application. Usage of the /common endpoint is not supported for such applications created after '10/15/2018'. Use a tenant-specific endpoint or configure the application to be multi-tenant.", clientID, name)}
}

func errNoTenantInfo() *Error {
	return &Error{Status: 400, Code: 50059, OAuthError: "invalid_request",
		Description: "No tenant-identifying information found in either the request or implied by any provided credentials."}
}

func errGrantOnCommon() *Error {
	return &Error{Status: 400, Code: 9001023, OAuthError: "invalid_request",
		Description: "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint."}
}

func errWrongSecret(clientID string) *Error {
	return &Error{Status: 401, Code: 7000215, OAuthError: "invalid_client",
		Description: fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", clientID)}
}

func errExpiredSecret(clientID string) *Error {
	return &Error{Status: 401, Code: 7000222, OAuthError: "invalid_client",
		Description: fmt.Sprintf("The provided client secret keys for app '%s' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.", clientID)}
}

func errNoCredential() *Error {
	return &Error{Status: 401, Code: 7000218, OAuthError: "invalid_client",
		Description: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."}
}

func errPublicWithCredential() *Error {
	return &Error{Status: 401, Code: 700025, OAuthError: "invalid_client",
		Description: "Client is public so neither 'client_assertion' nor 'client_secret' should be presented."}
}

func errAssertionInvalid(reason string) *Error {
	return &Error{Status: 401, Code: 50027, OAuthError: "invalid_client",
		Description: fmt.Sprintf("JWT token is invalid or malformed. %s", reason)}
}

func errAssertionAppMismatch() *Error {
	return &Error{Status: 401, Code: 700021, OAuthError: "invalid_client",
		Description: "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials ."}
}

func errAssertionTime(now, nbf, exp time.Time) *Error {
	f := "1/2/2006 3:04:05 PM"
	return &Error{Status: 401, Code: 700024, OAuthError: "invalid_client",
		Description: fmt.Sprintf("Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .",
			now.UTC().Format(f), nbf.UTC().Format(f), exp.UTC().Format(f))}
}

func errAssertionKey(thumb, clientID string) *Error {
	return &Error{Status: 401, Code: 700027, OAuthError: "invalid_client",
		Description: fmt.Sprintf("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '%s', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '%s'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployment-endpoints to find the SDKs for your app.]", thumb, clientID)}
}

func errAssertionSignature(clientID string) *Error {
	return &Error{Status: 401, Code: 700027, OAuthError: "invalid_client",
		Description: fmt.Sprintf("Client assertion failed signature validation. Trace ID: see below for app Id '%s'.", clientID)}
}

func errScopeMissing() *Error {
	return &Error{Status: 400, Code: 70011, OAuthError: "invalid_scope",
		Description: "The provided request must include a 'scope' input parameter."}
}

func errScopeInvalid(scope string) *Error {
	return &Error{Status: 400, Code: 70011, OAuthError: "invalid_scope",
		Description: fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", scope)}
}

func errScopeNotDefault(scope string) *Error {
	return &Error{Status: 400, Code: 1002012, OAuthError: "invalid_scope",
		Description: fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope)}
}

func errMultipleResources() *Error {
	return &Error{Status: 400, Code: 28000, OAuthError: "invalid_scope",
		Description: "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope {scopes} is not valid."}
}

func errResourceNotFound(resource, tenant string) *Error {
	return &Error{Status: 400, Code: 500011, OAuthError: "invalid_resource",
		Description: fmt.Sprintf("The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", resource, tenant)}
}

func errWrongPassword() *Error {
	return &Error{Status: 400, Code: 50126, OAuthError: "invalid_grant",
		Description: "Error validating credentials due to invalid username or password."}
}

func errUnknownUser(tenant string) *Error {
	return &Error{Status: 400, Code: 50034, OAuthError: "invalid_grant", SubError: "bad_token",
		Description: fmt.Sprintf("The user account {EUII Hidden} does not exist in the %s directory. To sign into this application, the account must be added to the directory.", tenant)}
}

func errUserDisabled() *Error {
	return &Error{Status: 400, Code: 50057, OAuthError: "invalid_grant",
		Description: "The user account is disabled."}
}

func errMFARequired(resourceAppID string) *Error {
	return &Error{Status: 400, Code: 50076, OAuthError: "invalid_grant", SubError: "basic_action",
		Description: fmt.Sprintf("Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '%s'.", resourceAppID)}
}

func errConditionalAccess(policyID string) *Error {
	return &Error{Status: 400, Code: 53003, OAuthError: "invalid_grant", SubError: "message_only",
		Description: "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
		Claims:      `{"access_token":{"capolids":{"essential":true,"values":["` + policyID + `"]}}}`}
}

func errNoConsent(clientID, name string) *Error {
	return &Error{Status: 400, Code: 65001, OAuthError: "invalid_grant", SubError: "consent_required",
		Description: fmt.Sprintf("The user or administrator has not consented to use the application with ID '%s' named '%s'. Send an interactive authorization request for this user and resource.", clientID, name)}
}

func errBadRefreshToken() *Error {
	return &Error{Status: 400, Code: 9002313, OAuthError: "invalid_grant",
		Description: "Invalid request. Request is malformed or invalid."}
}

func errRefreshTokenClient() *Error {
	return &Error{Status: 400, Code: 70000, OAuthError: "invalid_grant",
		Description: "Provided grant is invalid or malformed."}
}

func errRefreshTokenExpired(issued time.Time) *Error {
	return &Error{Status: 400, Code: 700082, OAuthError: "invalid_grant",
		Description: fmt.Sprintf("The refresh token has expired due to inactivity. The token was issued on %s and was inactive for 90.00:00:00.", issued.UTC().Format("2006-01-02T15:04:05.0000000Z"))}
}

func errTransient(status int) *Error {
	return &Error{Status: status, Code: 90033, OAuthError: "temporarily_unavailable",
		Description: "A transient error has occurred. Please try again."}
}
