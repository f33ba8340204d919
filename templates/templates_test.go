package templates_test

import (
	"strings"
	"testing"

	"github.com/helpdeskgw/helpdesk/templates"
)

type ackData struct {
	TrackingID, Subject, CustomerName, Department, Link, Priority string
	LinkDays                                                      int
	Articles                                                      []struct{ Title, Link string }
}

func TestAckRendersInBothLanguages(t *testing.T) {
	set, err := templates.Load()
	if err != nil {
		t.Fatal(err)
	}
	data := ackData{TrackingID: "ABD-BDE-GHJL", Subject: "No puedo\r\nentrar <b>", CustomerName: "Ana",
		Department: "Soporte", Link: "http://x/t/tok", Priority: "high", LinkDays: 90}
	for locale, want := range map[string][]string{
		"es": {"Hemos recibido tu solicitud", "Prioridad: Alta", "http://x/t/tok"},
		"en": {"We received your request", "Priority: High", "http://x/t/tok"},
	} {
		m, err := set.RenderMail(templates.MailAck, locale, data)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(m.Subject, "[ABD-BDE-GHJL] ") || strings.ContainsAny(m.Subject, "\r\n") {
			t.Errorf("%s subject %q: want the tag first and one line", locale, m.Subject)
		}
		for _, w := range want {
			if !strings.Contains(m.Text, w) {
				t.Errorf("%s text lacks %q:\n%s", locale, w, m.Text)
			}
		}
		if !strings.Contains(m.HTML, "No puedo\r\nentrar &lt;b&gt;") {
			t.Errorf("%s HTML does not escape the subject:\n%s", locale, m.HTML)
		}
	}
}
