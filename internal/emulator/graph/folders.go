package graph

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"inkorg/internal/emulator/exo"
)

// wellKnownFolders maps Graph's well-known folder names to Exchange's folder names (as its IMAP shows
// them). "msgfolderroot" is the root, which has no store folder.
func wellKnownFolder(name string) (string, bool) {
	switch strings.ToLower(name) {
	case "inbox":
		return "INBOX", true
	case "archive":
		return "Archive", true
	case "deleteditems":
		return "Deleted Items", true
	case "drafts":
		return "Drafts", true
	case "junkemail":
		return "Junk Email", true
	case "outbox":
		return "Outbox", true
	case "sentitems":
		return "Sent Items", true
	case "msgfolderroot":
		return "", true
	}
	return "", false
}

// folderRef is a resolved folder; root is the mailbox's top of information store.
type folderRef struct {
	root bool
	info exo.FolderInfo
}

func (f folderRef) id(mailbox string) string {
	if f.root {
		return rootID(mailbox)
	}
	return folderID(mailbox, f.info.Name, f.info.UIDValidity)
}

func findFolder(l []exo.FolderInfo, name string) (exo.FolderInfo, bool) {
	for _, f := range l {
		if strings.EqualFold(f.Name, name) {
			return f, true
		}
	}
	return exo.FolderInfo{}, false
}

// resolveFolder resolves a folder id or well-known name. Well-known folders always exist in Exchange,
// so they are created in the store on first use.
func (h *Handler) resolveFolder(rq *request, key string) (folderRef, error) {
	if name, ok := wellKnownFolder(key); ok {
		if name == "" {
			return folderRef{root: true}, nil
		}
		switch err := h.store.CreateFolder(rq.mailbox, name); {
		case err == nil:
			rq.folders = nil // the memo lacks it
		case !errors.Is(err, exo.ErrFolderExists):
			return folderRef{}, h.storeErr(err)
		}
		return h.folderByName(rq, name, 0)
	}
	id, err := parseID(key)
	if err != nil || id.kind == kindMessage {
		return folderRef{}, errorf(http.StatusBadRequest, codeIDMalformed, msgIDMalformed)
	}
	if !strings.EqualFold(id.mailbox, rq.mailbox) {
		return folderRef{}, notFound()
	}
	if id.kind == kindRoot {
		return folderRef{root: true}, nil
	}
	return h.folderByName(rq, id.folder, id.validity)
}

// folderList is the mailbox's folder list, read once per request (the store computes counts over
// every message, so this is the expensive part of single-message operations).
func (h *Handler) folderList(rq *request) ([]exo.FolderInfo, error) {
	if rq.folders == nil {
		l, err := h.store.Folders(rq.mailbox)
		if err != nil {
			return nil, h.storeErr(err)
		}
		rq.folders = l
	}
	return rq.folders, nil
}

// folderByName finds a store folder; validity 0 accepts any UIDVALIDITY.
func (h *Handler) folderByName(rq *request, name string, validity uint32) (folderRef, error) {
	l, err := h.folderList(rq)
	if err != nil {
		return folderRef{}, h.storeErr(err)
	}
	f, ok := findFolder(l, name)
	if !ok || (validity != 0 && f.UIDValidity != validity) {
		return folderRef{}, notFound()
	}
	return folderRef{info: f}, nil
}

// storeErr maps the store's errors to Graph's.
func (h *Handler) storeErr(err error) error {
	switch {
	case errors.Is(err, exo.ErrNoMailbox), errors.Is(err, exo.ErrNoFolder), errors.Is(err, exo.ErrNoMessage):
		return notFound()
	}
	return err
}

// folderJSON is Graph's mailFolder resource.
type folderJSON struct {
	ID               string `json:"id"`
	DisplayName      string `json:"displayName"`
	ParentFolderID   string `json:"parentFolderId"`
	ChildFolderCount int    `json:"childFolderCount"`
	UnreadItemCount  int    `json:"unreadItemCount"`
	TotalItemCount   int    `json:"totalItemCount"`
	IsHidden         bool   `json:"isHidden"`
}

// parentName is a store folder's parent ("" for top-level folders).
func parentName(name string) string {
	if i := strings.LastIndexByte(name, exo.Delimiter); i >= 0 {
		return name[:i]
	}
	return ""
}

func displayName(name string) string {
	if name == "INBOX" {
		return "Inbox"
	}
	return name[strings.LastIndexByte(name, exo.Delimiter)+1:]
}

func renderFolder(mailbox string, f exo.FolderInfo, all []exo.FolderInfo) folderJSON {
	j := folderJSON{ID: folderID(mailbox, f.Name, f.UIDValidity), DisplayName: displayName(f.Name),
		ParentFolderID: rootID(mailbox), UnreadItemCount: int(f.Unseen), TotalItemCount: int(f.Messages)}
	if p := parentName(f.Name); p != "" {
		if pf, ok := findFolder(all, p); ok {
			j.ParentFolderID = folderID(mailbox, pf.Name, pf.UIDValidity)
		}
	}
	for _, c := range all {
		if strings.EqualFold(parentName(c.Name), f.Name) {
			j.ChildFolderCount++
		}
	}
	return j
}

func (h *Handler) getFolder(rq *request, key string) error {
	if err := rq.need(permReadBasic); err != nil {
		return err
	}
	f, err := h.resolveFolder(rq, key)
	if err != nil {
		return err
	}
	all, err := h.folderList(rq)
	if err != nil {
		return err
	}
	var j folderJSON
	if f.root {
		j = folderJSON{ID: rootID(rq.mailbox), DisplayName: "Top of Information Store"}
		for _, c := range all {
			if parentName(c.Name) == "" {
				j.ChildFolderCount++
			}
		}
	} else {
		j = renderFolder(rq.mailbox, f.info, all)
	}
	type single struct {
		Context string `json:"@odata.context"`
		folderJSON
	}
	return writeJSON(rq.w, http.StatusOK, single{Context: h.baseURL(rq.r) + "/$metadata#users('" + rq.user + "')/mailFolders/$entity", folderJSON: j})
}

// listFolders lists the top-level folders (parent nil or the root) or a folder's children.
func (h *Handler) listFolders(rq *request, parent *folderRef) error {
	if err := rq.need(permReadBasic); err != nil {
		return err
	}
	q := rq.r.URL.Query()
	top, skip, err := paging(q, 10)
	if err != nil {
		return err
	}
	var nameFilter *string
	if f := q.Get("$filter"); f != "" {
		v, ok := parseDisplayNameFilter(f)
		if !ok {
			return errorf(http.StatusBadRequest, codeBadRequest, "Invalid filter clause: the emulator supports only displayName eq '…'.")
		}
		nameFilter = &v
	}
	all, err := h.folderList(rq)
	if err != nil {
		return err
	}
	parentKey := ""
	if parent != nil && !parent.root {
		parentKey = parent.info.Name
	}
	var sel []folderJSON
	for _, f := range all {
		if !strings.EqualFold(parentName(f.Name), parentKey) {
			continue
		}
		if nameFilter != nil && !strings.EqualFold(displayName(f.Name), *nameFilter) {
			continue
		}
		sel = append(sel, renderFolder(rq.mailbox, f, all))
	}
	page, more := pageOf(sel, skip, top)
	path := "/mailFolders"
	ctx := "/$metadata#users('" + rq.user + "')/mailFolders"
	if parent != nil {
		path += "/" + url.PathEscape(parent.id(rq.mailbox)) + "/childFolders"
		ctx += "('" + parent.id(rq.mailbox) + "')/childFolders"
	}
	out := collection{Context: h.baseURL(rq.r) + ctx, Value: page}
	if more {
		next := url.Values{}
		if nameFilter != nil {
			next.Set("$filter", q.Get("$filter"))
		}
		next.Set("$top", strconv.Itoa(top))
		next.Set("$skip", strconv.Itoa(skip+top))
		out.NextLink = h.baseURL(rq.r) + "/" + rq.userPath() + path + "?" + next.Encode()
	}
	return writeJSON(rq.w, http.StatusOK, out)
}

// collection is an OData collection answer.
type collection struct {
	Context   string `json:"@odata.context"`
	NextLink  string `json:"@odata.nextLink,omitempty"`
	DeltaLink string `json:"@odata.deltaLink,omitempty"`
	Value     any    `json:"value"`
}

// pageOf returns l[skip:skip+top] (never nil) and whether more follow.
func pageOf[T any](l []T, skip, top int) ([]T, bool) {
	if skip >= len(l) {
		return []T{}, false
	}
	end := min(skip+top, len(l))
	return slices.Clone(l[skip:end]), end < len(l)
}

// paging reads $top (default def, at most 1000) and $skip.
func paging(q url.Values, def int) (top, skip int, err error) {
	top, skip = def, 0
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, 0, errorf(http.StatusBadRequest, codeBadRequest, "Invalid value '"+v+"' for query option $top.")
		}
		top = min(n, 1000)
	}
	if v := q.Get("$skip"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, 0, errorf(http.StatusBadRequest, codeBadRequest, "Invalid value '"+v+"' for query option $skip.")
		}
		skip = n
	}
	return top, skip, nil
}

// parseDisplayNameFilter parses the one $filter the emulator supports: displayName eq '<literal>'
// (an OData string literal, in which a doubled quote stands for one quote).
func parseDisplayNameFilter(f string) (string, bool) {
	f = strings.TrimSpace(f)
	const prop = "displayname"
	if len(f) < len(prop) || !strings.EqualFold(f[:len(prop)], prop) {
		return "", false
	}
	rest := f[len(prop):]
	if !strings.HasPrefix(rest, " ") {
		return "", false
	}
	rest = strings.TrimLeft(rest, " ")
	if len(rest) < 2 || !strings.EqualFold(rest[:2], "eq") || len(rest) == 2 || rest[2] != ' ' {
		return "", false
	}
	lit := strings.TrimSpace(rest[2:])
	if len(lit) < 2 || lit[0] != '\'' || lit[len(lit)-1] != '\'' {
		return "", false
	}
	inner := lit[1 : len(lit)-1]
	if strings.Contains(strings.ReplaceAll(inner, "''", ""), "'") {
		return "", false
	}
	return strings.ReplaceAll(inner, "''", "'"), true
}

// listMessages lists a folder's messages, newest first unless $orderby=receivedDateTime asc.
func (h *Handler) listMessages(rq *request, key string) error {
	if err := rq.need(permReadBasic); err != nil {
		return err
	}
	q := rq.r.URL.Query()
	top, skip, err := paging(q, 10)
	if err != nil {
		return err
	}
	if q.Get("$filter") != "" || q.Get("$search") != "" {
		return errorf(http.StatusNotImplemented, codeNotImplemented, "The emulator does not implement $filter or $search on messages; use delta.")
	}
	desc := true
	switch ob := strings.Join(strings.Fields(strings.ToLower(q.Get("$orderby"))), " "); ob {
	case "", "receiveddatetime desc":
	case "receiveddatetime", "receiveddatetime asc":
		desc = false
	default:
		return errorf(http.StatusBadRequest, codeBadRequest, "The emulator supports only $orderby=receivedDateTime [asc|desc].")
	}
	f, err := h.resolveFolder(rq, key)
	if err != nil {
		return err
	}
	if f.root {
		return writeJSON(rq.w, http.StatusOK, collection{Context: h.baseURL(rq.r) + "/$metadata#users('" + rq.user + "')/mailFolders('" + f.id(rq.mailbox) + "')/messages", Value: []any{}})
	}
	msgs, err := h.store.Messages(rq.mailbox, f.info.Name)
	if err != nil {
		return h.storeErr(err)
	}
	slices.SortStableFunc(msgs, func(a, b exo.MessageInfo) int {
		c := a.InternalDate.Compare(b.InternalDate)
		if c == 0 {
			c = int(int64(a.UID) - int64(b.UID))
		}
		if desc {
			return -c
		}
		return c
	})
	page, more := pageOf(msgs, skip, top)
	value := make([]messageJSON, 0, len(page))
	for _, m := range page {
		raw, err := h.store.Raw(rq.mailbox, f.info.Name, m.UID)
		if err != nil {
			continue // moved away meanwhile
		}
		value = append(value, renderMessage(rq.mailbox, f.info.Name, f.info.UIDValidity, m, raw))
	}
	fid := f.id(rq.mailbox)
	out := collection{Context: h.baseURL(rq.r) + "/$metadata#users('" + rq.user + "')/mailFolders('" + fid + "')/messages", Value: value}
	if more {
		next := url.Values{}
		if ob := q.Get("$orderby"); ob != "" {
			next.Set("$orderby", ob)
		}
		next.Set("$top", strconv.Itoa(top))
		next.Set("$skip", strconv.Itoa(skip+top))
		out.NextLink = h.baseURL(rq.r) + "/" + rq.userPath() + "/mailFolders/" + url.PathEscape(fid) + "/messages?" + next.Encode()
	}
	return writeJSON(rq.w, http.StatusOK, out)
}
