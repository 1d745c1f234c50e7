package mailparse

// Monitor-to-Monitor (M2M) recognition.
//
// M2M messages are business documents exchanged by e-mail between two installations of the ERP; the
// sender attaches the document as PDF + XML (legacy basic-data maintenance: a TXT file) and the receiver
// registers it from the XML. No real M2M XML sample is available, so the recognition below is a
// documented, deliberately broad table, applied in this order; the first rule that matches wins:
//
//  1. XML attachments (Content-Type text/xml, application/xml, */*+xml, or a .xml filename), in MIME
//     order. Each is read with encoding/xml, streaming, only up to its root element (a document that
//     declares a DTD is refused, nothing is expanded, and at most 64 KiB are read before the root), and
//     the kind is looked up by
//       a. the root element's local name,
//       b. the last segment of its namespace (UBL: urn:oasis:names:specification:ubl:schema:xsd:Invoice-2),
//       c. a type / documentType attribute on the root,
//       d. the name of a direct child of the root (wrappers such as the UBL StandardBusinessDocument).
//  2. Words of the filenames (XML, then PDF, then the other attachments) and then of the subject.
//  3. A TXT attachment without any XML: legacy basic-data.
//  4. Otherwise "unknown" with the reason; a message is never dropped.
//
// Names are compared case-insensitively with '-', '_', '.' and blanks removed (kindForName). The table
// covers the ERP's own plausible names (PurchaseOrder, OrderConfirmation, DispatchAdvice, Invoice,
// DeliverySchedule…), openTRANS (ORDER, ORDERCHANGE, ORDERRESPONSE, DISPATCHNOTIFICATION, INVOICE), UBL 2
// (Order, OrderResponse, OrderResponseSimple, DespatchAdvice, Invoice, CreditNote), EDIFACT message
// names (ORDERS, ORDCHG, ORDRSP, DESADV, INVOIC, DELFOR, DELJIT) and the Swedish words the ERP uses in
// subjects and filenames (inköpsorder, orderbekräftelse, följesedel, faktura, leveransplan…).
//
// After a kind is found from the XML, the same stream is read a little further (up to 256 KiB in all)
// for the document number: a root attribute (number, id, documentNumber, orderNumber, invoiceNumber),
// UBL's cbc:ID as a direct child of the document element, or the first element named like a document
// number (ORDER_ID, INVOICE_ID, DISPATCHNOTIFICATION_ID, OrderNumber, DocumentNumber, InvoiceNumber…).

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"unicode"

	"github.com/emersion/go-message/charset"
)

// Kind is an M2M document kind.
type Kind string

// The M2M document kinds.
const (
	KindPurchaseOrder        Kind = "purchase-order"
	KindOrderConfirmation    Kind = "order-confirmation"
	KindDispatchAdvice       Kind = "dispatch-advice"
	KindInvoice              Kind = "invoice"
	KindDeliverySchedule     Kind = "delivery-schedule"
	KindDeliveryInstructions Kind = "delivery-instructions"
	KindNonconformity        Kind = "nonconformity"
	KindBasicData            Kind = "basic-data"
	KindUnknown              Kind = "unknown"
)

// M2M is the result of ClassifyM2M.
type M2M struct {
	Kind           Kind   `json:"kind"`
	XMLIndex       int    `json:"xmlIndex"` // attachment index of the XML used (else the first XML); -1 when none
	PDFIndex       int    `json:"pdfIndex"` // attachment index of the first PDF; -1 when none
	DocumentNumber string `json:"documentNumber,omitempty"`
	RootElement    string `json:"rootElement,omitempty"` // local name of the XML's root element
	Namespace      string `json:"namespace,omitempty"`   // namespace of the XML's root element
	Reason         string `json:"reason"`                // how it was recognised, or why not
}

const (
	maxXMLProlog = 64 << 10  // bytes read before the root element must have started
	maxXMLScan   = 256 << 10 // bytes read in all (document number included)
	maxNumberLen = 100
)

// ClassifyM2M recognises the M2M document kind of m. openXML opens the decoded bytes of attachment number
// index (for example with AttachmentOpener); it may be nil, and then only names and the subject count.
// ClassifyM2M never fails: whatever it cannot read or recognise ends in Reason.
func ClassifyM2M(m *Message, openXML func(index int) (io.ReadCloser, error)) M2M {
	res := M2M{Kind: KindUnknown, XMLIndex: -1, PDFIndex: -1}
	var xmls, pdfs, others []Attachment
	txt := -1
	for _, a := range m.Attachments {
		ext := strings.ToLower(path.Ext(a.Filename))
		switch {
		case isXML(a.ContentType, ext):
			xmls = append(xmls, a)
		case a.ContentType == "application/pdf" || a.ContentType == "application/x-pdf" || ext == ".pdf":
			if res.PDFIndex < 0 {
				res.PDFIndex = a.Index
			}
			pdfs = append(pdfs, a)
		default:
			if txt < 0 && (ext == ".txt" || a.ContentType == "text/plain" && !a.Inline) {
				txt = a.Index
			}
			others = append(others, a)
		}
	}
	if len(xmls) > 0 {
		res.XMLIndex = xmls[0].Index
	}

	var notes []string
	for _, a := range xmls {
		if openXML == nil {
			notes = append(notes, "XML attachments not read")
			break
		}
		info, err := sniffXML(openXML, a.Index)
		label := fmt.Sprintf("XML attachment %d (%s)", a.Index, orNone(a.Filename))
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: %v", label, err))
			continue
		}
		if info.kind == "" {
			notes = append(notes, fmt.Sprintf("%s: root element <%s> not recognised", label, info.root))
			if res.RootElement == "" {
				res.RootElement, res.Namespace = info.root, info.ns
			}
			continue
		}
		res.Kind, res.XMLIndex, res.DocumentNumber = info.kind, a.Index, info.number
		res.RootElement, res.Namespace = info.root, info.ns
		res.Reason = fmt.Sprintf("%s: %s", label, info.how)
		return res
	}

	var sources []struct{ what, text string }
	for _, a := range append(append(xmls, pdfs...), others...) {
		if a.Filename != "" {
			sources = append(sources, struct{ what, text string }{fmt.Sprintf("filename of attachment %d %q", a.Index, a.Filename), a.Filename})
		}
	}
	sources = append(sources, struct{ what, text string }{"subject", m.Subject})
	for _, weak := range []bool{false, true} {
		for _, s := range sources {
			if k, word := kindInText(s.text, weak); k != "" {
				res.Kind = k
				res.Reason = fmt.Sprintf("%s contains %q", s.what, word)
				if weak {
					res.Reason += " (weak match)"
				}
				res.Reason = withNotes(res.Reason, notes)
				return res
			}
		}
	}
	if txt >= 0 && len(xmls) == 0 {
		res.Kind = KindBasicData
		res.Reason = withNotes(fmt.Sprintf("TXT attachment %d without XML (legacy basic-data)", txt), notes)
		return res
	}
	switch {
	case len(xmls) == 0 && res.PDFIndex < 0:
		notes = append(notes, "no XML or PDF attachment")
	case len(xmls) == 0:
		notes = append(notes, "no XML attachment")
	}
	res.Reason = withNotes("not recognised: no known document name in the XML, the filenames or the subject", notes)
	return res
}

func withNotes(s string, notes []string) string {
	if len(notes) == 0 {
		return s
	}
	return s + "; " + strings.Join(notes, "; ")
}

func orNone(s string) string {
	if s == "" {
		return "no filename"
	}
	return s
}

func isXML(ct, ext string) bool {
	return ct == "text/xml" || ct == "application/xml" || strings.HasSuffix(ct, "+xml") || ext == ".xml"
}

// xmlInfo is what sniffXML learned.
type xmlInfo struct {
	root, ns string
	kind     Kind
	how      string
	number   string
}

// errDTD refuses documents with a document type declaration.
var errDTD = errors.New("declares a DTD; refused")

// sniffXML reads attachment index up to its root element (and a bounded way on, for the number).
func sniffXML(open func(int) (io.ReadCloser, error), index int) (info xmlInfo, err error) {
	rc, err := open(index)
	if err != nil {
		return info, fmt.Errorf("open: %w", err)
	}
	defer func() {
		if cerr := rc.Close(); cerr != nil && err == nil && info.root == "" {
			err = fmt.Errorf("close: %w", cerr)
		}
	}()
	d := xml.NewDecoder(io.LimitReader(rc, maxXMLScan))
	d.Strict = true
	d.Entity = map[string]string{} // no entity but the five predefined ones
	d.CharsetReader = charset.Reader

	// Up to the root element.
	var root xml.StartElement
	for {
		if d.InputOffset() > maxXMLProlog {
			return info, fmt.Errorf("no root element in the first %d KiB", maxXMLProlog>>10)
		}
		tok, err := d.RawToken()
		if err != nil {
			if err == io.EOF {
				return info, errors.New("no root element")
			}
			return info, fmt.Errorf("not well-formed before the root element: %w", err)
		}
		if dir, ok := tok.(xml.Directive); ok {
			if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(string(dir))), "DOCTYPE") {
				return info, errDTD
			}
			return info, fmt.Errorf("unexpected <!%s>", clip(string(dir), 20))
		}
		if se, ok := tok.(xml.StartElement); ok {
			root = se
			break
		}
	}
	// RawToken does not resolve prefixes; resolve the root's namespace from its own declarations.
	info.root = root.Name.Local
	info.ns = nsOf(root, root.Name.Space)

	switch {
	case lookup(info.root) != "":
		info.kind = lookup(info.root)
		info.how = fmt.Sprintf("root element <%s>", info.root)
	case lookup(nsLastSegment(info.ns)) != "":
		info.kind = lookup(nsLastSegment(info.ns))
		info.how = fmt.Sprintf("root element <%s> in namespace %s", info.root, info.ns)
	default:
		for _, a := range root.Attr {
			switch strings.ToLower(a.Name.Local) {
			case "type", "documenttype", "doctype", "messagetype":
				if k := lookup(a.Value); k != "" && info.kind == "" {
					info.kind = k
					info.how = fmt.Sprintf("root element <%s> with %s=%q", info.root, a.Name.Local, a.Value)
				}
			}
		}
	}
	if fam := nsFamily(info.ns); fam != "" && info.kind != "" {
		info.how += " (" + fam + ")"
	}

	// Further: the first child's name (when still unknown) and the document number.
	docDepth := 1 // depth of the document element: 1 = root, 2 = a direct child that named the kind
	info.number = rootNumber(root)
	depth := 1
	var text strings.Builder
	capture := false
	for info.number == "" || info.kind == "" {
		tok, err := d.RawToken()
		if err != nil {
			break // the kind from the root stands; a broken or cut tail only loses the number
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if info.kind == "" && depth == 2 {
				if k := lookup(t.Name.Local); k != "" {
					info.kind, docDepth = k, 2
					info.how = fmt.Sprintf("element <%s> inside root element <%s>", t.Name.Local, info.root)
					info.number = rootNumber(t)
					continue
				}
			}
			if info.kind != "" && info.number == "" && isNumberElement(t.Name.Local, depth == docDepth+1) {
				capture = true
				text.Reset()
			}
		case xml.CharData:
			if capture && text.Len() < 4*maxNumberLen {
				text.Write(t)
			}
		case xml.EndElement:
			if capture {
				capture = false
				if n := strings.TrimSpace(text.String()); n != "" && len(n) <= maxNumberLen {
					info.number = n
				}
			}
			depth--
			if depth <= 0 {
				return info, nil
			}
		case xml.Directive:
			return info, nil // a DTD after the root is malformed; stop reading
		}
	}
	return info, nil
}

// nsOf resolves prefix (or the default namespace when prefix is "") from the element's own xmlns
// attributes; without a declaration the prefix itself is returned.
func nsOf(se xml.StartElement, prefix string) string {
	for _, a := range se.Attr {
		if prefix == "" && a.Name.Space == "" && a.Name.Local == "xmlns" {
			return a.Value
		}
		if prefix != "" && a.Name.Space == "xmlns" && a.Name.Local == prefix {
			return a.Value
		}
	}
	return prefix
}

// nsLastSegment returns "Invoice" for urn:oasis:names:specification:ubl:schema:xsd:Invoice-2.
func nsLastSegment(ns string) string {
	if !strings.HasPrefix(strings.ToLower(ns), "urn:oasis:names:specification:ubl:schema:xsd:") {
		return ""
	}
	s := ns[strings.LastIndexByte(ns, ':')+1:]
	if i := strings.LastIndexByte(s, '-'); i > 0 {
		s = s[:i]
	}
	return s
}

func nsFamily(ns string) string {
	l := strings.ToLower(ns)
	switch {
	case strings.HasPrefix(l, "urn:oasis:names:specification:ubl:"):
		return "UBL"
	case strings.Contains(l, "opentrans"):
		return "openTRANS"
	case strings.Contains(l, "peppol"):
		return "Peppol"
	}
	return ""
}

func rootNumber(se xml.StartElement) string {
	for _, a := range se.Attr {
		switch normalize(a.Name.Local) {
		case "number", "id", "documentnumber", "documentno", "ordernumber", "orderno", "invoicenumber", "invoiceno":
			if v := strings.TrimSpace(a.Value); v != "" && len(v) <= maxNumberLen {
				return v
			}
		}
	}
	return ""
}

// isNumberElement reports whether an element carries the document number; "ID" counts only as a direct
// child of the document element (UBL cbc:ID), other names anywhere.
func isNumberElement(local string, directChild bool) bool {
	switch n := normalize(local); n {
	case "id":
		return directChild
	case "orderid", "invoiceid", "dispatchnotificationid", "ordernumber", "orderno", "ordernr",
		"purchaseordernumber", "documentnumber", "documentno", "documentid", "invoicenumber", "invoiceno",
		"dispatchadvicenumber", "despatchadvicenumber", "shipmentnumber", "deliveryschedulenumber",
		"nonconformitynumber", "casenumber", "ordernummer", "fakturanummer":
		return true
	}
	return false
}

// normalize lower-cases s and drops '-', '_', '.' and blanks.
func normalize(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '-', '_', '.', ' ', '\t':
			return -1
		}
		return unicode.ToLower(r)
	}, s)
}

// lookup is kindForName on a raw name.
func lookup(name string) Kind { k, _ := kindForName(normalize(name)); return k }

// kindForName is the recognition table, on normalized names. weak marks names that are ambiguous in
// free text (a subject saying "order" or "case") and only count when nothing stronger matched.
func kindForName(n string) (k Kind, weak bool) {
	switch n {
	case "purchaseorder", "orderrequest", "orderchange", "ordchg", "purchaseorderchange", "inkopsorder",
		"inköpsorder", "bestallning", "beställning":
		return KindPurchaseOrder, false
	case "order", "orders":
		return KindPurchaseOrder, true
	case "orderconfirmation", "orderresponse", "orderresponsesimple", "ordrsp", "orderacknowledgement",
		"orderacknowledgment", "orderbekraftelse", "orderbekräftelse":
		return KindOrderConfirmation, false
	case "despatchadvice", "dispatchadvice", "shipmentadvice", "shippingadvice", "shippingnotice",
		"shipmentnotice", "advanceshipmentnotice", "advanceshippingnotice", "desadv", "dispatchnotification",
		"despatchnotification", "deliverynote", "foljesedel", "följesedel", "leveransavisering", "utleveransavisering":
		return KindDispatchAdvice, false
	case "asn":
		return KindDispatchAdvice, true
	case "invoice", "customerinvoice", "supplierinvoice", "creditnote", "invoic", "faktura", "kundfaktura",
		"leverantorsfaktura", "leverantörsfaktura", "kreditfaktura":
		return KindInvoice, false
	case "deliveryschedule", "deliveryforecast", "delfor", "deljit", "deliveryplan", "leveransplan",
		"leveransschema", "salesforecast":
		return KindDeliverySchedule, false
	case "forecast", "prognos":
		return KindDeliverySchedule, true
	case "deliveryinstruction", "deliveryinstructions", "leveransinstruktion", "leveransinstruktioner":
		return KindDeliveryInstructions, false
	case "nonconformity", "nonconformance", "nonconformityreport", "deviation", "complaint",
		"reklamation", "avvikelse", "avvikelserapport":
		return KindNonconformity, false
	case "case", "arende", "ärende":
		return KindNonconformity, true
	case "basicdata", "grunddata", "partinfo", "articledata":
		return KindBasicData, false
	}
	return "", false
}

// kindInText finds a document name in free text (a filename or a subject): runs of letters, tried as
// three-, two- and one-word names in that order ("order confirmation" before "order"). With weak false
// only unambiguous names count.
func kindInText(s string, weak bool) (Kind, string) {
	words := strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) })
	// Split CamelCase too: "PurchaseOrder4711.xml" has the words Purchase, Order.
	var split []string
	for _, w := range words {
		split = append(split, camelWords(w)...)
	}
	for _, ws := range [][]string{words, split} {
		for n := 3; n >= 1; n-- {
			for i := 0; i+n <= len(ws); i++ {
				k, isWeak := kindForName(normalize(strings.Join(ws[i:i+n], "")))
				if k != "" && isWeak == weak {
					return k, strings.Join(ws[i:i+n], " ")
				}
			}
		}
	}
	return "", ""
}

// camelWords splits "PurchaseOrder" into "Purchase", "Order"; all-capital words stay whole.
func camelWords(w string) []string {
	var out []string
	start := 0
	rs := []rune(w)
	for i := 1; i < len(rs); i++ {
		if unicode.IsUpper(rs[i]) && unicode.IsLower(rs[i-1]) {
			out = append(out, string(rs[start:i]))
			start = i
		}
	}
	return append(out, string(rs[start:]))
}

// AttachmentOpener adapts a source of the raw message (called once per attachment opened, e.g.
// os.Open of the spooled file) to the xml argument of ClassifyM2M: it streams Extract through a pipe.
// Closing the returned reader stops the extraction and waits for it.
func AttachmentOpener(open func() (io.ReadCloser, error)) func(index int) (io.ReadCloser, error) {
	return func(index int) (io.ReadCloser, error) {
		raw, err := open()
		if err != nil {
			return nil, fmt.Errorf("mailparse: open raw message: %w", err)
		}
		pr, pw := io.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, err := Extract(raw, index, pw)
			if cerr := raw.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("mailparse: close raw message: %w", cerr)
			}
			pw.CloseWithError(err) // nil: the reader sees io.EOF
		}()
		return &pipeReadCloser{PipeReader: pr, done: done}, nil
	}
}

type pipeReadCloser struct {
	*io.PipeReader
	done chan struct{}
}

func (p *pipeReadCloser) Close() error {
	err := p.PipeReader.Close()
	<-p.done
	return err
}
