package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"html/template"

	"inkorg/internal/doctor"
	"inkorg/internal/settings"
	"inkorg/internal/settingsapi"
	"inkorg/internal/store"
)

func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"mark": func(s doctor.Status) string {
			switch s {
			case doctor.Passed:
				return "✓"
			case doctor.Failed:
				return "✗"
			}
			return "–"
		},
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "–"
			}
			return t.UTC().Format("2006-01-02 15:04:05 UTC")
		},
	}
}

// base is what every page shows: the menu, the language switch, the operator.
type base struct {
	L        Lang
	CSRF     string
	Op       store.Operator
	Admin    bool
	Title    string
	Path     string
	Flash    string
	Error    string
	Problems settings.Problems
}

func (h *Handler) base(r *http.Request, s *session, title string) base {
	return base{L: s.lang, CSRF: s.csrf, Op: s.op, Admin: s.op.Role == store.RoleAdmin, Title: s.lang.T(title), Path: r.URL.Path,
		Flash: flash(r, s.lang)}
}

func flash(r *http.Request, l Lang) string {
	if r.URL.Query().Get("saved") == "1" {
		return l.T("Saved.")
	}
	return ""
}

type option struct {
	Value, Label string
	Selected     bool
}

// fieldView is one field of a procedure's form.
type fieldView struct {
	Name, Label, Kind string // Kind: text, number, date, checkbox, select, secret, textarea
	Value             string
	Options           []option
	Effective         string // the effective value (secrets: set / not set)
	Source            string
	Disabled          bool
	Secret            string // a secret's state
	Clearable         bool   // a secret that can be cleared (or, for an override, inherited again)
	Problems          []string
}

type formView struct {
	Fields  []fieldView
	Applies string // JSON: "method|flow" → the fields that do not apply
	Method  string // the fixed method (incoming accounts) or the system's (a user's inherited method)
	Flow    string // the system's flow, for a field that inherits it
}

// appliesTable lists, for each method and flow (and "" for none chosen), the fields that do not apply.
func appliesTable() string {
	fields := []string{"serverAddress", "port", "useSsl", "username", "password", "clientId", "tenantId", "authFlow", "clientSecret",
		"clientSecretExpires", "clientCertificate", "clientKey", "exchangeUsername", "exchangePassword", "copyToSelf", "sendTransport"}
	t := map[string][]string{}
	for _, m := range append([]settings.EmailMethod{""}, settings.EmailMethods()...) {
		for _, f := range append([]settings.AuthFlow{""}, settings.AuthFlows()...) {
			na := []string{}
			for _, x := range fields {
				if !settings.FieldApplies(m, f, x) {
					na = append(na, x)
				}
			}
			t[string(m)+"|"+string(f)] = na
		}
	}
	b, _ := json.Marshal(t)
	return string(b)
}

func (l Lang) source(s settings.Source) string { return l.T(string(s)) }

func methodOptions(l Lang, cur string, inherit string) []option {
	var out []option
	if inherit != "" {
		out = append(out, option{Value: "", Label: "(" + l.T("inherit") + ": " + inherit + ")", Selected: cur == ""})
	} else {
		out = append(out, option{Value: "", Label: l.T("Not set"), Selected: cur == ""})
	}
	for _, m := range settings.EmailMethods() {
		out = append(out, option{Value: string(m), Label: l.T(m.Label()), Selected: cur == string(m)})
	}
	return out
}

func flowOptions(l Lang, cur string, inherit string) []option {
	out := []option{{Value: "", Label: l.T("Not set"), Selected: cur == ""}}
	if inherit != "" {
		out[0].Label = "(" + l.T("inherit") + ": " + inherit + ")"
	}
	for _, f := range settings.AuthFlows() {
		out = append(out, option{Value: string(f), Label: l.T(f.Label()), Selected: cur == string(f)})
	}
	return out
}

func (l Lang) methodLabel(m settings.EmailMethod) string {
	if m == "" {
		return l.T("Not set")
	}
	return l.T(m.Label())
}

func (l Lang) flowLabel(f settings.AuthFlow) string {
	if f == "" {
		return l.T("Not set")
	}
	return l.T(f.Label())
}

func (l Lang) typeLabel(t settings.IncomingType) string {
	if s, ok := typeLabels[t]; ok {
		return l.T(s)
	}
	return string(t)
}

func (l Lang) copyLabel(c settings.CopyToSelf) string {
	switch c {
	case settings.CopyCc:
		return "Cc"
	case settings.CopyBcc:
		return "Bcc"
	}
	return l.T("None")
}

// attach puts each problem on its field (path = prefix + field name) and returns the rest.
func attach(fields []fieldView, prefix string, ps settings.Problems) settings.Problems {
	var rest settings.Problems
	for _, p := range ps {
		found := false
		for i := range fields {
			if p.Path == prefix+fields[i].Name || (fields[i].Name == "pollSeconds" && p.Path == prefix+"pollInterval") {
				fields[i].Problems = append(fields[i].Problems, p.Message)
				found = true
			}
		}
		if !found {
			rest = append(rest, p)
		}
	}
	return rest
}

func (l Lang) secretState(s settings.Secret) string { return l.T(s.State()) }

// field is a form's field with its value, effective value, source and whether it applies.
func (l Lang) field(name, kind, value, eff string, src settings.Source, na bool) fieldView {
	return fieldView{Name: name, Label: l.fieldLabel(name), Kind: kind, Value: value, Effective: eff, Source: l.source(src), Disabled: na}
}

// opt is an optional text's value, "" when unset.
func opt(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// --- System settings ---

type systemData struct {
	base
	Form formView
}

func (h *Handler) systemForm(l Lang, s settings.System, ps settings.Problems) (formView, settings.Problems) {
	applies := func(f string) bool { return settings.FieldApplies(s.EmailMethod, s.AuthFlow, f) }
	src := func(set bool) string {
		if set {
			return l.source(settings.SourceSystem)
		}
		return l.source(settings.SourceDefault)
	}
	text := func(name, v string) fieldView {
		return fieldView{Name: name, Label: l.fieldLabel(name), Kind: "text", Value: v, Effective: v, Source: src(v != ""), Disabled: !applies(name)}
	}
	secret := func(name string, v settings.Secret) fieldView {
		return fieldView{Name: name, Label: l.fieldLabel(name), Kind: "secret", Secret: l.secretState(v), Effective: l.secretState(v),
			Source: src(v.IsSet()), Disabled: !applies(name), Clearable: v.IsSet()}
	}
	transport := []option{}
	for _, t := range settings.SendTransports() {
		transport = append(transport, option{Value: string(t), Label: l.T(t.Label()), Selected: s.SendTransport == t || (s.SendTransport == "" && t == settings.SendSMTP)})
	}
	port := strconv.Itoa(s.Port)
	fields := []fieldView{
		{Name: "emailMethod", Label: l.fieldLabel("emailMethod"), Kind: "select", Options: methodOptions(l, string(s.EmailMethod), ""),
			Effective: l.methodLabel(s.EmailMethod), Source: src(s.EmailMethod != "")},
		text("serverAddress", s.ServerAddress),
		{Name: "port", Label: l.fieldLabel("port"), Kind: "number", Value: port, Effective: port, Source: src(s.Port != 0), Disabled: !applies("port")},
		{Name: "useSsl", Label: l.fieldLabel("useSsl"), Kind: "checkbox", Value: strconv.FormatBool(s.UseSSL), Effective: strconv.FormatBool(s.UseSSL),
			Source: src(s.UseSSL), Disabled: !applies("useSsl")},
		text("username", s.Username),
		secret("password", s.Password),
		text("clientId", s.ClientID),
		text("tenantId", s.TenantID),
		{Name: "authFlow", Label: l.fieldLabel("authFlow"), Kind: "select", Options: flowOptions(l, string(s.AuthFlow), ""),
			Effective: l.flowLabel(s.AuthFlow), Source: src(s.AuthFlow != ""), Disabled: !applies("authFlow")},
		secret("clientSecret", s.ClientSecret),
		{Name: "clientSecretExpires", Label: l.fieldLabel("clientSecretExpires"), Kind: "date", Value: s.ClientSecretExpires.String(),
			Effective: s.ClientSecretExpires.String(), Source: src(!s.ClientSecretExpires.IsZero()), Disabled: !applies("clientSecretExpires")},
		{Name: "clientCertificate", Label: l.fieldLabel("clientCertificate"), Kind: "textarea", Value: s.ClientCertificate,
			Effective: certSummary(s.ClientCertificate), Source: src(s.ClientCertificate != ""), Disabled: !applies("clientCertificate")},
		secret("clientKey", s.ClientKey),
		{Name: "sendTransport", Label: l.fieldLabel("sendTransport"), Kind: "select", Options: transport,
			Effective: l.T(s.SendTransport.Label()), Source: src(s.SendTransport != ""), Disabled: !applies("sendTransport")},
	}
	rest := attach(fields, "system.", ps)
	return formView{Fields: fields, Applies: appliesTable()}, rest
}

func certSummary(pemText string) string {
	if pemText == "" {
		return ""
	}
	c, _, err := settings.ParseCertificate(pemText)
	if err != nil {
		return "unreadable certificate"
	}
	return c.String()
}

func (h *Handler) systemPage(w http.ResponseWriter, r *http.Request, s *session) {
	h.showSystem(w, r, s, http.StatusOK, nil, nil)
}

func (h *Handler) showSystem(w http.ResponseWriter, r *http.Request, s *session, status int, refused settings.Problems, err error) {
	sn, serr := h.svc.Snapshot(r.Context())
	if serr != nil {
		h.fail(w, r, s, serr)
		return
	}
	d := systemData{base: h.base(r, s, "System settings")}
	d.Form, d.Problems = h.systemForm(s.lang, sn.System, append(refused, sn.Under("system.")...))
	if err != nil {
		d.Error = err.Error()
	}
	h.render(w, status, "system", d)
}

// formInput turns a posted form into a settingsapi.Input: the fields named, minus the CSRF token. An
// empty secret keeps the secret; "clear.NAME" clears it (or inherits it again). emptyIsNull makes an
// empty text inherit (a user's overrides).
func formInput(r *http.Request, fields []string, emptyIsNull bool, secrets ...string) settingsapi.Input {
	in := settingsapi.Input{}
	for _, f := range fields {
		vs, ok := r.PostForm[f]
		if !ok || len(vs) == 0 {
			continue
		}
		v := vs[len(vs)-1]
		switch {
		case slices.Contains(secrets, f) && v == "":
		case emptyIsNull && strings.TrimSpace(v) == "":
			in[f] = settingsapi.Value{Null: true}
		default:
			in[f] = settingsapi.Value{Text: v}
		}
	}
	for _, f := range secrets {
		if r.PostFormValue("clear."+f) != "" {
			in[f] = settingsapi.Value{Null: true}
		}
	}
	return in
}

// saved redirects after a successful POST (so a reload does not post again).
func saved(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to+"?saved=1", http.StatusSeeOther)
}

// refusal splits a save's error into problems to show on the form (422) or a plain error (400).
func refusal(err error) (int, settings.Problems, error) {
	var ps settings.Problems
	var ie *settingsapi.InputError
	switch {
	case errors.As(err, &ps):
		return http.StatusUnprocessableEntity, ps.Errors(), nil
	case errors.As(err, &ie):
		return http.StatusBadRequest, nil, ie
	case errors.Is(err, store.ErrExists):
		return http.StatusConflict, nil, err
	}
	return 0, nil, err
}

// afterSave answers a form's POST: after a save (err nil) it redirects to to; a refused save shows the
// form again through show, with the status and the problems or the error; any other error is the
// error page.
func (h *Handler) afterSave(w http.ResponseWriter, r *http.Request, s *session, err error, to string,
	show func(status int, refused settings.Problems, err error)) {
	if err == nil {
		saved(w, r, to)
		return
	}
	status, ps, perr := refusal(err)
	if status == 0 {
		h.fail(w, r, s, err)
		return
	}
	show(status, ps, perr)
}

func (h *Handler) saveSystem(w http.ResponseWriter, r *http.Request, s *session) {
	in := formInput(r, settingsapi.SystemFields(), false, "password", "clientSecret", "clientKey")
	_, err := h.svc.SaveSystem(r.Context(), in, s.principal().Actor())
	h.afterSave(w, r, s, err, "/system", func(status int, ps settings.Problems, perr error) {
		h.showSystem(w, r, s, status, ps, perr)
	})
}

// --- Users ---

type usersData struct {
	base
	Users []userRow
}

type userRow struct {
	Name, Method, Source, Address string
}

func (h *Handler) usersPage(w http.ResponseWriter, r *http.Request, s *session) {
	if s.op.Role != store.RoleAdmin {
		http.Redirect(w, r, "/users/"+url.PathEscape(s.op.User), http.StatusSeeOther)
		return
	}
	sys, err := h.cfg.Store.System(r.Context())
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	users, err := h.cfg.Store.Users(r.Context())
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	d := usersData{base: h.base(r, s, "Users")}
	for _, u := range users {
		e := settings.ResolveUser(sys, u)
		d.Users = append(d.Users, userRow{Name: u.Name, Method: s.lang.methodLabel(e.EmailMethod.Value), Source: s.lang.source(e.EmailMethod.Source),
			Address: e.EmailAddress.Value})
	}
	h.render(w, http.StatusOK, "users", d)
}

func (h *Handler) openUser(w http.ResponseWriter, r *http.Request, s *session) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" || strings.ContainsAny(name, "/?#") {
		http.Redirect(w, r, "/users", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/users/"+url.PathEscape(name), http.StatusSeeOther)
}

type userData struct {
	base
	Name string
	Form formView
}

func (h *Handler) userForm(l Lang, sys settings.System, u settings.User, ps settings.Problems) (formView, settings.Problems) {
	e := settings.ResolveUser(sys, u)
	method := ""
	if u.EmailMethod != nil {
		method = string(*u.EmailMethod)
	}
	copySel := ""
	if u.CopyToSelf != nil {
		copySel = string(*u.CopyToSelf)
	}
	copyOpts := []option{{Value: "", Label: "(" + l.T("inherit") + ": " + l.copyLabel(settings.CopyNone) + ")", Selected: copySel == ""}}
	for _, c := range []settings.CopyToSelf{settings.CopyNone, settings.CopyCc, settings.CopyBcc} {
		copyOpts = append(copyOpts, option{Value: string(c), Label: l.copyLabel(c), Selected: copySel == string(c)})
	}
	pw := settings.Secret{}
	if u.ExchangePassword != nil {
		pw = *u.ExchangePassword
	}
	f := l.field
	fields := []fieldView{
		f("emailMethod", "select", method, l.methodLabel(e.EmailMethod.Value), e.EmailMethod.Source, false),
		f("emailAddress", "text", opt(u.EmailAddress), e.EmailAddress.Value, e.EmailAddress.Source, false),
		f("exchangeUsername", "text", opt(u.ExchangeUsername), e.ExchangeUsername.Value, e.ExchangeUsername.Source, e.ExchangeUsername.NotApplicable),
		f("exchangePassword", "secret", "", l.secretState(e.ExchangePassword.Value), e.ExchangePassword.Source, e.ExchangePassword.NotApplicable),
		f("copyToSelf", "select", copySel, l.copyLabel(e.CopyToSelf.Value), e.CopyToSelf.Source, e.CopyToSelf.NotApplicable),
		f("signature", "textarea", opt(u.Signature), e.Signature.Value, e.Signature.Source, false),
	}
	fields[0].Options = methodOptions(l, method, l.methodLabel(sys.EmailMethod))
	fields[3].Secret, fields[3].Clearable = l.secretState(pw), u.ExchangePassword != nil
	fields[4].Options = copyOpts
	rest := attach(fields, settings.UserPath(u.Name), ps)
	// The Exchange Online values every user inherits, shown read-only with their source.
	for _, x := range []struct {
		name string
		fv   settings.Field[string]
	}{{"clientId", e.ClientID}, {"tenantId", e.TenantID}} {
		fields = append(fields, fieldView{Name: x.name, Label: l.fieldLabel(x.name), Kind: "readonly", Effective: x.fv.Value,
			Source: l.source(x.fv.Source), Disabled: x.fv.NotApplicable})
	}
	fields = append(fields,
		fieldView{Name: "authFlow", Label: l.fieldLabel("authFlow"), Kind: "readonly", Effective: l.flowLabel(e.AuthFlow.Value),
			Source: l.source(e.AuthFlow.Source), Disabled: e.AuthFlow.NotApplicable},
		fieldView{Name: "clientSecret", Label: l.fieldLabel("clientSecret"), Kind: "readonly", Effective: l.secretState(e.ClientSecret.Value),
			Source: l.source(e.ClientSecret.Source), Disabled: e.ClientSecret.NotApplicable})
	return formView{Fields: fields, Applies: appliesTable(), Method: string(sys.EmailMethod), Flow: string(sys.AuthFlow)}, rest
}

func (h *Handler) mayEdit(w http.ResponseWriter, r *http.Request, s *session, name string) bool {
	if !s.principal().MayEditUser(name) {
		h.errorPage(w, r, s, http.StatusForbidden, s.lang.T("You may only change your own e-mail settings."))
		return false
	}
	return true
}

func (h *Handler) userPage(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	if !h.mayEdit(w, r, s, name) {
		return
	}
	h.showUser(w, r, s, name, http.StatusOK, nil, nil)
}

func (h *Handler) showUser(w http.ResponseWriter, r *http.Request, s *session, name string, status int, refused settings.Problems, err error) {
	u, uerr := h.svc.LoadUser(r.Context(), name)
	if uerr != nil {
		h.fail(w, r, s, uerr)
		return
	}
	sn, serr := h.svc.Snapshot(r.Context())
	if serr != nil {
		h.fail(w, r, s, serr)
		return
	}
	d := userData{base: h.base(r, s, "Users"), Name: u.Name}
	d.Form, d.Problems = h.userForm(s.lang, sn.System, u, append(refused, sn.Under(settings.UserPath(u.Name))...))
	if err != nil {
		d.Error = err.Error()
	}
	h.render(w, status, "user", d)
}

func (h *Handler) saveUser(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	if !h.mayEdit(w, r, s, name) {
		return
	}
	in := formInput(r, settingsapi.UserFields(), true, "exchangePassword")
	_, err := h.svc.SaveUser(r.Context(), name, in, s.principal().Actor())
	h.afterSave(w, r, s, err, "/users/"+url.PathEscape(name), func(status int, ps settings.Problems, perr error) {
		h.showUser(w, r, s, name, status, ps, perr)
	})
}

// --- Settings for incoming e-mail ---

type incomingData struct {
	base
	Accounts []accountRow
	Types    []option
	Selected int64
	Report   *doctor.Report
	Form     formView // the account being edited (account page)
	ID       int64
	Address  string
}

type accountRow struct {
	ID                          int64
	Address, Type, Flow, Secret string
	Source                      string
}

func (h *Handler) accountRows(r *http.Request, l Lang) ([]accountRow, error) {
	sys, err := h.cfg.Store.System(r.Context())
	if err != nil {
		return nil, err
	}
	as, err := h.cfg.Store.IncomingAccounts(r.Context())
	if err != nil {
		return nil, err
	}
	var out []accountRow
	for _, a := range as {
		e := settings.ResolveAccount(sys, a)
		out = append(out, accountRow{ID: a.ID, Address: a.Address, Type: l.typeLabel(a.Type), Flow: l.flowLabel(e.AuthFlow.Value),
			Secret: l.secretState(e.ClientSecret.Value), Source: l.source(e.ClientSecret.Source)})
	}
	return out, nil
}

func typeOptions(l Lang, cur settings.IncomingType) []option {
	out := []option{}
	for _, t := range settings.IncomingTypes() {
		out = append(out, option{Value: string(t), Label: l.typeLabel(t), Selected: t == cur})
	}
	return out
}

func (h *Handler) incomingPage(w http.ResponseWriter, r *http.Request, s *session) {
	h.showIncoming(w, r, s, http.StatusOK, 0, nil, nil, nil)
}

func (h *Handler) showIncoming(w http.ResponseWriter, r *http.Request, s *session, status int, selected int64, rep *doctor.Report, refused settings.Problems, err error) {
	rows, rerr := h.accountRows(r, s.lang)
	if rerr != nil {
		h.fail(w, r, s, rerr)
		return
	}
	d := incomingData{base: h.base(r, s, "Settings for incoming e-mail"), Accounts: rows, Types: typeOptions(s.lang, settings.TypeMonitorToMonitor),
		Selected: selected, Report: rep}
	d.Problems = refused
	if err != nil {
		d.Error = err.Error()
	}
	h.render(w, status, "incoming", d)
}

func (h *Handler) addAccount(w http.ResponseWriter, r *http.Request, s *session) {
	in := formInput(r, settingsapi.AccountFields(), false, "exchangePassword", "clientSecret")
	a, err := h.svc.AddAccount(r.Context(), in, s.principal().Actor())
	h.afterSave(w, r, s, err, fmt.Sprintf("/incoming/%d", a.ID), func(status int, ps settings.Problems, perr error) {
		h.showIncoming(w, r, s, status, 0, nil, ps, perr)
	})
}

func (h *Handler) runDoctor(r *http.Request, id int64) (*doctor.Report, error) {
	a, err := h.svc.AccountByID(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if h.cfg.Validate == nil {
		return &doctor.Report{Target: "incoming account " + a.Address, Steps: []doctor.Step{{Name: "doctor", Status: doctor.Failed,
			Error: &doctor.Failure{Summary: "the doctor is not available in this process"}}}}, nil
	}
	c, err := h.cfg.Store.Config(r.Context())
	if err != nil {
		return nil, err
	}
	rep := h.cfg.Validate(r.Context(), c, a.Address)
	return &rep, nil
}

func (h *Handler) validateSelected(w http.ResponseWriter, r *http.Request, s *session) {
	id, _ := strconv.ParseInt(r.PostFormValue("id"), 10, 64)
	rep, err := h.runDoctor(r, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			h.showIncoming(w, r, s, http.StatusNotFound, 0, nil, nil, err)
			return
		}
		h.fail(w, r, s, err)
		return
	}
	h.showIncoming(w, r, s, http.StatusOK, id, rep, nil, nil)
}

func (h *Handler) accountForm(l Lang, sys settings.System, a settings.IncomingAccount, ps settings.Problems) (formView, settings.Problems) {
	e := settings.ResolveAccount(sys, a)
	f := l.field
	flow := ""
	if a.AuthFlow != nil {
		flow = string(*a.AuthFlow)
	}
	expires := ""
	if a.ClientSecretExpires != nil {
		expires = a.ClientSecretExpires.String()
	}
	fields := []fieldView{
		f("address", "text", a.Address, e.Address.Value, e.Address.Source, false),
		f("type", "select", string(a.Type), l.typeLabel(e.Type.Value), e.Type.Source, false),
		f("exchangeUsername", "text", a.ExchangeUsername, e.ExchangeUsername.Value, e.ExchangeUsername.Source, e.ExchangeUsername.NotApplicable),
		f("exchangePassword", "secret", "", l.secretState(e.ExchangePassword.Value), e.ExchangePassword.Source, e.ExchangePassword.NotApplicable),
		f("availableTo", "text", strings.Join(a.AvailableTo, ", "), strings.Join(e.AvailableTo.Value, ", "), e.AvailableTo.Source, false),
		f("clientId", "text", opt(a.ClientID), e.ClientID.Value, e.ClientID.Source, e.ClientID.NotApplicable),
		f("tenantId", "text", opt(a.TenantID), e.TenantID.Value, e.TenantID.Source, e.TenantID.NotApplicable),
		f("authFlow", "select", flow, l.flowLabel(e.AuthFlow.Value), e.AuthFlow.Source, e.AuthFlow.NotApplicable),
		f("clientSecret", "secret", "", l.secretState(e.ClientSecret.Value), e.ClientSecret.Source, e.ClientSecret.NotApplicable),
		f("clientSecretExpires", "date", expires, e.ClientSecretExpires.Value.String(), e.ClientSecretExpires.Source, e.ClientSecretExpires.NotApplicable),
		f("folder", "text", a.Folder, e.Folder.Value, e.Folder.Source, false),
		f("processedFolder", "text", a.ProcessedFolder, e.ProcessedFolder.Value, e.ProcessedFolder.Source, e.ProcessedFolder.NotApplicable),
		f("failedFolder", "text", a.FailedFolder, e.FailedFolder.Value, e.FailedFolder.Source, false),
		f("leaveInPlace", "checkbox", strconv.FormatBool(a.LeaveInPlace), strconv.FormatBool(e.LeaveInPlace.Value), e.LeaveInPlace.Source, false),
		f("pollSeconds", "number", strconv.Itoa(int(a.PollInterval/time.Second)), strconv.Itoa(e.PollSeconds.Value), e.PollSeconds.Source, false),
	}
	fields[1].Options = typeOptions(l, a.Type)
	fields[3].Secret, fields[3].Clearable = l.secretState(a.ExchangePassword), a.ExchangePassword.IsSet()
	fields[7].Options = flowOptions(l, flow, l.flowLabel(sys.AuthFlow))
	if a.ClientSecret != nil {
		fields[8].Secret, fields[8].Clearable = l.secretState(*a.ClientSecret), true
	} else {
		fields[8].Secret = "(" + l.T("inherit") + ": " + l.secretState(sys.ClientSecret) + ")"
	}
	rest := attach(fields, settings.AccountPath(a.Address), ps)
	return formView{Fields: fields, Applies: appliesTable(), Method: string(sys.EmailMethod), Flow: string(sys.AuthFlow)}, rest
}

func accountID(r *http.Request) int64 {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	return id
}

func (h *Handler) accountPage(w http.ResponseWriter, r *http.Request, s *session) {
	h.showAccount(w, r, s, http.StatusOK, nil, nil, nil)
}

func (h *Handler) showAccount(w http.ResponseWriter, r *http.Request, s *session, status int, rep *doctor.Report, refused settings.Problems, err error) {
	a, aerr := h.svc.AccountByID(r.Context(), accountID(r))
	if aerr != nil {
		h.fail(w, r, s, aerr)
		return
	}
	sn, serr := h.svc.Snapshot(r.Context())
	if serr != nil {
		h.fail(w, r, s, serr)
		return
	}
	d := incomingData{base: h.base(r, s, "Settings for incoming e-mail"), ID: a.ID, Address: a.Address, Report: rep, Selected: a.ID}
	d.Form, d.Problems = h.accountForm(s.lang, sn.System, a, append(refused, sn.Under(settings.AccountPath(a.Address))...))
	if err != nil {
		d.Error = err.Error()
	}
	h.render(w, status, "account", d)
}

func (h *Handler) saveAccount(w http.ResponseWriter, r *http.Request, s *session) {
	in := formInput(r, settingsapi.AccountFields(), false, "exchangePassword", "clientSecret")
	a, err := h.svc.SaveAccount(r.Context(), accountID(r), in, s.principal().Actor())
	h.afterSave(w, r, s, err, fmt.Sprintf("/incoming/%d", a.ID), func(status int, ps settings.Problems, perr error) {
		h.showAccount(w, r, s, status, nil, ps, perr)
	})
}

func (h *Handler) deleteAccount(w http.ResponseWriter, r *http.Request, s *session) {
	if err := h.svc.RemoveAccount(r.Context(), accountID(r), s.principal().Actor()); err != nil {
		h.fail(w, r, s, err)
		return
	}
	saved(w, r, "/incoming")
}

func (h *Handler) validateAccount(w http.ResponseWriter, r *http.Request, s *session) {
	rep, err := h.runDoctor(r, accountID(r))
	if err != nil {
		h.fail(w, r, s, err)
		return
	}
	h.showAccount(w, r, s, http.StatusOK, rep, nil, nil)
}

// --- Webshop – Administration ---

type webshopData struct {
	base
	Methods []option
	User    []fieldView
}

func (h *Handler) webshopPage(w http.ResponseWriter, r *http.Request, s *session) {
	h.showWebshop(w, r, s, http.StatusOK, nil, nil)
}

func (h *Handler) showWebshop(w http.ResponseWriter, r *http.Request, s *session, status int, refused settings.Problems, err error) {
	sn, serr := h.svc.Snapshot(r.Context())
	if serr != nil {
		h.fail(w, r, s, serr)
		return
	}
	c := sn.Config
	l := s.lang
	d := webshopData{base: h.base(r, s, "Webshop – Administration"), Methods: []option{
		{Value: "", Label: l.T("Not set"), Selected: c.Webshop.EmailMethod == settings.WebshopNotSet},
		{Value: string(settings.WebshopAccordingToUserSettings), Label: l.T("According to user settings"),
			Selected: c.Webshop.EmailMethod == settings.WebshopAccordingToUserSettings},
	}}
	d.Problems = append(refused, sn.Under("webshop")...)
	if e := settings.ResolveWebshop(c); e.User != nil {
		u, _ := c.User(settings.WebshopUser)
		u.Name = settings.WebshopUser
		form, _ := h.userForm(l, c.System, u, nil)
		d.User = form.Fields
	}
	if err != nil {
		d.Error = err.Error()
	}
	h.render(w, status, "webshop", d)
}

func (h *Handler) saveWebshop(w http.ResponseWriter, r *http.Request, s *session) {
	in := formInput(r, []string{"emailMethod"}, false)
	_, err := h.svc.SaveWebshop(r.Context(), in, s.principal().Actor())
	h.afterSave(w, r, s, err, "/webshop", func(status int, ps settings.Problems, perr error) {
		h.showWebshop(w, r, s, status, ps, perr)
	})
}

// --- errors ---

type errorData struct {
	base
	Status  int
	Message string
}

func (h *Handler) errorPage(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	h.render(w, status, "error", errorData{base: h.base(r, s, http.StatusText(status)), Status: status, Message: msg})
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	if errors.Is(err, store.ErrNotFound) {
		h.errorPage(w, r, s, http.StatusNotFound, err.Error())
		return
	}
	h.cfg.Logger.Error("web", "method", r.Method, "path", r.URL.Path, "err", err)
	h.errorPage(w, r, s, http.StatusInternalServerError, "the settings could not be read or saved; see the service log")
}
