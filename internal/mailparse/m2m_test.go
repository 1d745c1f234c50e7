package mailparse

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

// xmlFrom serves attachment bodies from a map.
func xmlFrom(docs map[int]string) func(int) (io.ReadCloser, error) {
	return func(i int) (io.ReadCloser, error) {
		d, ok := docs[i]
		if !ok {
			return nil, fmt.Errorf("attachment %d: %w", i, ErrNoSuchAttachment)
		}
		return io.NopCloser(strings.NewReader(d)), nil
	}
}

func TestClassifyM2M(t *testing.T) {
	pdf := Attachment{Index: 0, Filename: "doc.pdf", ContentType: "application/pdf"}
	xmlAtt := Attachment{Index: 1, Filename: "doc.xml", ContentType: "application/xml"}
	withXML := []Attachment{pdf, xmlAtt}
	const decl = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"
	cases := []struct {
		name     string
		subject  string
		atts     []Attachment
		xml      string
		kind     Kind
		number   string
		reason   string // substring
		xmlIndex int
		pdfIndex int
	}{
		{"own purchase order", "", withXML, decl + `<PurchaseOrder><Head><OrderNumber>4711</OrderNumber></Head></PurchaseOrder>`,
			KindPurchaseOrder, "4711", "root element <PurchaseOrder>", 1, 0},
		{"UBL order, prefixed root", "", withXML,
			`<ubl:Order xmlns:ubl="urn:oasis:names:specification:ubl:schema:xsd:Order-2" xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"><cbc:UBLVersionID>2.1</cbc:UBLVersionID><cbc:ID>O-1</cbc:ID></ubl:Order>`,
			KindPurchaseOrder, "O-1", "(UBL)", 1, 0},
		{"openTRANS ORDER", "", withXML,
			`<ORDER xmlns="http://www.opentrans.org/XMLSchema/2.1" type="standard"><ORDER_HEADER><ORDER_INFO><ORDER_ID>OT-9</ORDER_ID></ORDER_INFO></ORDER_HEADER></ORDER>`,
			KindPurchaseOrder, "OT-9", "(openTRANS)", 1, 0},
		{"openTRANS ORDERCHANGE", "", withXML, `<ORDERCHANGE><ORDER_ID>OT-9</ORDER_ID></ORDERCHANGE>`, KindPurchaseOrder, "OT-9", "<ORDERCHANGE>", 1, 0},
		{"UBL OrderResponse", "", withXML,
			`<OrderResponse xmlns="urn:oasis:names:specification:ubl:schema:xsd:OrderResponse-2"><ID xmlns="urn:x">R-5</ID></OrderResponse>`,
			KindOrderConfirmation, "R-5", "<OrderResponse>", 1, 0},
		{"order confirmation", "", withXML, `<order-confirmation number="OC-3"/>`, KindOrderConfirmation, "OC-3", "", 1, 0},
		{"UBL DespatchAdvice", "", withXML, `<DespatchAdvice><ID>D-1</ID></DespatchAdvice>`, KindDispatchAdvice, "D-1", "", 1, 0},
		{"ShipmentAdvice", "", withXML, `<ShipmentAdvice/>`, KindDispatchAdvice, "", "", 1, 0},
		{"openTRANS DISPATCHNOTIFICATION", "", withXML,
			`<DISPATCHNOTIFICATION><DISPATCHNOTIFICATION_HEADER><DISPATCHNOTIFICATION_INFO><DISPATCHNOTIFICATION_ID>DN-7</DISPATCHNOTIFICATION_ID></DISPATCHNOTIFICATION_INFO></DISPATCHNOTIFICATION_HEADER></DISPATCHNOTIFICATION>`,
			KindDispatchAdvice, "DN-7", "", 1, 0},
		{"openTRANS INVOICE", "", withXML, `<INVOICE><INVOICE_HEADER><INVOICE_INFO><INVOICE_ID>I-2</INVOICE_ID></INVOICE_INFO></INVOICE_HEADER></INVOICE>`,
			KindInvoice, "I-2", "", 1, 0},
		{"UBL CreditNote", "", withXML, `<CreditNote xmlns="urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"/>`, KindInvoice, "", "(UBL)", 1, 0},
		{"delivery schedule", "", withXML, `<DeliverySchedule><Number>DS-1</Number></DeliverySchedule>`, KindDeliverySchedule, "", "", 1, 0},
		{"delivery forecast", "", withXML, `<Delivery_Forecast/>`, KindDeliverySchedule, "", "", 1, 0},
		{"delivery instructions", "", withXML, `<DeliveryInstructions/>`, KindDeliveryInstructions, "", "", 1, 0},
		{"nonconformity", "", withXML, `<NonConformity><CaseNumber>NC-1</CaseNumber></NonConformity>`, KindNonconformity, "NC-1", "", 1, 0},
		{"namespace names the kind", "", withXML, `<Document xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"/>`,
			KindInvoice, "", "in namespace", 1, 0},
		{"type attribute names the kind", "", withXML, `<M2M type="DispatchAdvice" documentNumber="X-1"/>`, KindDispatchAdvice, "X-1", `type="DispatchAdvice"`, 1, 0},
		{"wrapper child names the kind", "", withXML, `<Envelope><Header/><Invoice><ID>W-1</ID></Invoice></Envelope>`,
			KindInvoice, "W-1", "element <Invoice> inside root element <Envelope>", 1, 0},
		{"windows-1252 XML", "", withXML, "<?xml version=\"1.0\" encoding=\"windows-1252\"?><Faktura><Fakturanummer>F\xe41</Fakturanummer></Faktura>",
			KindInvoice, "Fä1", "", 1, 0},
		{"DTD refused, falls back to the subject", "Faktura 12", withXML, `<!DOCTYPE x [<!ENTITY a "b">]><Invoice>&a;</Invoice>`,
			KindInvoice, "", "declares a DTD; refused", 1, 0},
		{"not XML, subject", "Leveransplan v10", withXML, "%PDF-1.4 not xml", KindDeliverySchedule, "", "no root element", 1, 0},
		{"broken XML", "", withXML, "<?xml version=\"1.0\"?><!-- never closed", KindUnknown, "", "not well-formed", 1, 0},
		{"unknown root, filename", "", []Attachment{{Index: 0, Filename: "OrderConfirmation_12.xml", ContentType: "text/xml"}}, `<Data/>`,
			KindOrderConfirmation, "", `filename of attachment 0 "OrderConfirmation_12.xml" contains "OrderConfirmation"`, 0, -1},
		{"camel-case filename", "", []Attachment{{Index: 0, Filename: "DeliveryScheduleWeek12.pdf", ContentType: "application/pdf"}}, "",
			KindDeliverySchedule, "", "Delivery Schedule", -1, 0},
		{"Swedish subject", "Orderbekräftelse 4711", nil, "", KindOrderConfirmation, "", "subject", -1, -1},
		{"subject phrase beats weak word", "Order confirmation for order 12", nil, "", KindOrderConfirmation, "", `"Order confirmation"`, -1, -1},
		{"weak word", "Your order 12", nil, "", KindPurchaseOrder, "", "weak match", -1, -1},
		{"basic data TXT", "M2M", []Attachment{{Index: 0, Filename: "M2M.TXT", ContentType: "text/plain"}}, "", KindBasicData, "", "legacy basic-data", -1, -1},
		{"nothing", "Hello", []Attachment{pdf}, "", KindUnknown, "", "no XML attachment", -1, 0},
		{"xml open fails", "", withXML, "", KindUnknown, "", "open: attachment 1", 1, 0},
		{"empty XML", "", withXML, "   ", KindUnknown, "", "no root element", 1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := &Message{Subject: c.subject, Attachments: c.atts}
			docs := map[int]string{}
			if c.xml != "" {
				docs[1], docs[0] = c.xml, c.xml
				if len(c.atts) == 2 {
					delete(docs, 0)
				}
			}
			got := ClassifyM2M(m, xmlFrom(docs))
			if got.Kind != c.kind || got.DocumentNumber != c.number || !strings.Contains(got.Reason, c.reason) ||
				got.XMLIndex != c.xmlIndex || got.PDFIndex != c.pdfIndex {
				t.Errorf("got %+v\nwant kind %s number %q reason ~%q xml %d pdf %d", got, c.kind, c.number, c.reason, c.xmlIndex, c.pdfIndex)
			}
		})
	}
}

func TestClassifyM2MNilOpener(t *testing.T) {
	m := &Message{Subject: "Invoice 1", Attachments: []Attachment{{Index: 0, Filename: "a.xml", ContentType: "text/xml"}}}
	got := ClassifyM2M(m, nil)
	if got.Kind != KindInvoice || got.XMLIndex != 0 || !strings.Contains(got.Reason, "XML attachments not read") {
		t.Errorf("got %+v", got)
	}
}

// countingSource is an endless reader that counts what is read from it.
type countingSource struct {
	prefix string
	fill   byte
	n      int64
}

func (c *countingSource) Read(b []byte) (int, error) {
	i := 0
	for ; i < len(b); i++ {
		if c.n < int64(len(c.prefix)) {
			b[i] = c.prefix[c.n]
		} else {
			b[i] = c.fill
		}
		c.n++
	}
	return i, nil
}

// TestSniffXMLBounded checks that a huge XML is never read beyond the scan limit.
func TestSniffXMLBounded(t *testing.T) {
	for name, src := range map[string]*countingSource{
		"endless whitespace before the root": {fill: ' '},
		"endless comment before the root":    {prefix: "<!--", fill: 'x'},
		"endless text after the root":        {prefix: "<Invoice><Note>", fill: 'x'},
	} {
		t.Run(name, func(t *testing.T) {
			open := func(int) (io.ReadCloser, error) { return io.NopCloser(src), nil }
			info, _ := sniffXML(open, 0)
			if src.n > maxXMLScan+64<<10 {
				t.Errorf("read %d bytes, limit %d", src.n, maxXMLScan)
			}
			if strings.HasPrefix(src.prefix, "<Invoice>") && info.kind != KindInvoice {
				t.Errorf("kind %q, want invoice", info.kind)
			}
		})
	}
}

func TestKindInText(t *testing.T) {
	for _, c := range []struct {
		s    string
		weak bool
		kind Kind
	}{
		{"Inköpsorder PO-1", false, KindPurchaseOrder},
		{"purchase_order-12.xml", false, KindPurchaseOrder},
		{"PURCHASEORDER.XML", false, KindPurchaseOrder},
		{"Följesedel 88", false, KindDispatchAdvice},
		{"Dispatch advice 88", false, KindDispatchAdvice},
		{"Shipment-Advice", false, KindDispatchAdvice},
		{"Non-conformity report", false, KindNonconformity},
		{"Delivery instructions week 3", false, KindDeliveryInstructions},
		{"Kundfaktura 2026-1", false, KindInvoice},
		{"Re: lunch", false, ""},
		{"order 12", false, ""},
		{"order 12", true, KindPurchaseOrder},
		{"New case 7", true, KindNonconformity},
	} {
		if got, _ := kindInText(c.s, c.weak); got != c.kind {
			t.Errorf("kindInText(%q, %v) = %q, want %q", c.s, c.weak, got, c.kind)
		}
	}
}

func TestAttachmentOpener(t *testing.T) {
	path := "testdata/m2m-invoice-ubl.eml"
	opens := 0
	open := AttachmentOpener(func() (io.ReadCloser, error) { opens++; return os.Open(path) })

	rc, err := open(1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	if err != nil || !strings.Contains(string(b), "<cbc:ID>2026-0042</cbc:ID>") {
		t.Fatalf("read %q, %v", b, err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}

	// Closing early stops the extraction (Close waits for it).
	rc, err = open(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Read(make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}

	rc, err = open(9)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); !errors.Is(err, ErrNoSuchAttachment) {
		t.Fatalf("err = %v, want ErrNoSuchAttachment", err)
	}
	rc.Close()

	failing := AttachmentOpener(func() (io.ReadCloser, error) { return nil, os.ErrNotExist })
	if _, err := failing(0); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
	if opens != 3 {
		t.Errorf("opened %d times, want 3", opens)
	}
}
