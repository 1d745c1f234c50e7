package graph

import (
	"encoding/json"
	"net/http"
	"strings"

	"inkorg/internal/emulator/exo"
)

// maxJSONBody bounds the JSON bodies of PATCH and move.
const maxJSONBody = 1 << 20

// lookupMessage resolves a message id to its folder and record.
func (h *Handler) lookupMessage(rq *request, key string) (exo.FolderInfo, exo.MessageInfo, error) {
	id, err := parseID(key)
	if err != nil || id.kind != kindMessage {
		return exo.FolderInfo{}, exo.MessageInfo{}, errorf(http.StatusBadRequest, codeIDMalformed, msgIDMalformed)
	}
	if !strings.EqualFold(id.mailbox, rq.mailbox) {
		return exo.FolderInfo{}, exo.MessageInfo{}, errorf(http.StatusNotFound, codeWrongMailbox, msgWrongMailbox)
	}
	f, err := h.folderByName(rq, id.folder, id.validity)
	if err != nil {
		return exo.FolderInfo{}, exo.MessageInfo{}, err
	}
	msgs, err := h.store.Messages(rq.mailbox, f.info.Name)
	if err != nil {
		return exo.FolderInfo{}, exo.MessageInfo{}, h.storeErr(err)
	}
	for _, m := range msgs {
		if m.UID == id.uid {
			return f.info, m, nil
		}
	}
	return exo.FolderInfo{}, exo.MessageInfo{}, notFound()
}

// writeMessage renders one message with its @odata.context.
func (h *Handler) writeMessage(rq *request, status int, f exo.FolderInfo, info exo.MessageInfo) error {
	raw, err := h.store.Raw(rq.mailbox, f.Name, info.UID)
	if err != nil {
		return h.storeErr(err)
	}
	type single struct {
		Context string `json:"@odata.context"`
		messageJSON
	}
	return writeJSON(rq.w, status, single{Context: h.baseURL(rq.r) + "/$metadata#users('" + rq.user + "')/messages/$entity",
		messageJSON: renderMessage(rq.mailbox, f.Name, f.UIDValidity, info, raw)})
}

func (h *Handler) getMessage(rq *request, key string) error {
	if err := rq.need(permReadBasic); err != nil {
		return err
	}
	f, info, err := h.lookupMessage(rq, key)
	if err != nil {
		return err
	}
	return h.writeMessage(rq, http.StatusOK, f, info)
}

// getValue serves $value: the message exactly as delivered.
func (h *Handler) getValue(rq *request, key string) error {
	if err := rq.need(permRead); err != nil {
		return err
	}
	id, err := parseID(key)
	if err != nil || id.kind != kindMessage {
		return errorf(http.StatusBadRequest, codeIDMalformed, msgIDMalformed)
	}
	if !strings.EqualFold(id.mailbox, rq.mailbox) {
		return errorf(http.StatusNotFound, codeWrongMailbox, msgWrongMailbox)
	}
	f, err := h.folderByName(rq, id.folder, id.validity)
	if err != nil {
		return err
	}
	raw, err := h.store.Raw(rq.mailbox, f.info.Name, id.uid)
	if err != nil {
		return h.storeErr(err)
	}
	rq.w.Header().Set("Content-Type", "text/plain")
	rq.w.WriteHeader(http.StatusOK)
	if rq.r.Method != http.MethodHead {
		_, _ = rq.w.Write(raw) // a failed write means the client went away
	}
	return nil
}

// patchMessage applies {"isRead": …}; other properties are accepted and ignored.
func (h *Handler) patchMessage(rq *request, key string) error {
	if err := rq.need(permWrite); err != nil {
		return err
	}
	var body map[string]json.RawMessage
	if err := readJSON(rq.r, maxJSONBody, &body); err != nil {
		return err
	}
	f, info, err := h.lookupMessage(rq, key)
	if err != nil {
		return err
	}
	for k, v := range body {
		if !strings.EqualFold(k, "isRead") {
			continue
		}
		var seen bool
		if err := json.Unmarshal(v, &seen); err != nil {
			return errorf(http.StatusBadRequest, codeBadRequest, "Cannot convert the literal '"+string(v)+"' to the expected type 'Edm.Boolean'.")
		}
		if err := h.store.SetSeen(rq.mailbox, f.Name, info.UID, seen); err != nil {
			return h.storeErr(err)
		}
		info.Flags = setFlag(info.Flags, `\Seen`, seen)
	}
	return h.writeMessage(rq, http.StatusOK, f, info)
}

func setFlag(flags []string, flag string, on bool) []string {
	out := make([]string, 0, len(flags)+1)
	for _, f := range flags {
		if f != flag {
			out = append(out, f)
		}
	}
	if on {
		out = append(out, flag)
	}
	return out
}

// moveMessage moves a message to {"destinationId": …} and answers 201 with the message under its new id.
func (h *Handler) moveMessage(rq *request, key string) error {
	if err := rq.need(permWrite); err != nil {
		return err
	}
	var body struct {
		DestinationID string `json:"destinationId"`
	}
	if err := readJSON(rq.r, maxJSONBody, &body); err != nil {
		return err
	}
	if body.DestinationID == "" {
		return errorf(http.StatusBadRequest, codeInvalidParameter, "The value of the parameter 'DestinationId' is empty.")
	}
	f, info, err := h.lookupMessage(rq, key)
	if err != nil {
		return err
	}
	dest, err := h.resolveFolder(rq, body.DestinationID)
	if err != nil {
		return err
	}
	if dest.root {
		return errorf(http.StatusBadRequest, codeBadRequest, "Messages cannot be moved to the root folder.")
	}
	uid, err := h.store.Move(rq.mailbox, f.Name, info.UID, dest.info.Name)
	if err != nil {
		return h.storeErr(err)
	}
	info.UID = uid
	return h.writeMessage(rq, http.StatusCreated, dest.info, info)
}
