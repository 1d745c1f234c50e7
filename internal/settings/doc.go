// Package settings is inkorg's configuration model, taken from the ERP help page "Activate OAuth 2.0 with
// Microsoft Entra ID" (shared/seeds): the system settings, the per-user e-mail settings (with the reserved
// user WEBSHOP), the incoming e-mail accounts per type, and Webshop – Administration.
//
// The package has three jobs and no I/O:
//   - the types, in the seeds' names (see values.go and model.go);
//   - resolution: the effective value of every field of a user, an incoming account or the webshop, and
//     where it came from (system, user, account, default) — resolve.go;
//   - validation with a field path and a plain-language message for every rule — validate.go.
//
// Secrets (client secret, passwords) travel as Secret values, which print, log and marshal only as
// "set" or "not set"; sealing them at rest is the store's and package secrets' business.
package settings
