package mailin

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

type dsnCase struct {
	name string
	raw  string
	want *DeliveryReport // nil: not a bounce
}

const postfixBounce = `Return-Path: <>
Received: by mail.example.com (Postfix) id 4Xyz12; Mon,  3 Feb 2025 10:15:46 +0100 (CET)
Date: Mon,  3 Feb 2025 10:15:46 +0100 (CET)
From: MAILER-DAEMON@mail.example.com (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: soporte@example.com
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="4Xyz12.1738574146/mail.example.com"
Content-Transfer-Encoding: 8bit
Message-Id: <20250203091546.4Xyz12@mail.example.com>

This is a MIME-encapsulated message.

--4Xyz12.1738574146/mail.example.com
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mail.example.com.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

                   The mail system

<nobody@example.org>: host mx.example.org[203.0.113.5] said: 550 5.1.1
    <nobody@example.org>: Recipient address rejected: User unknown in local
    recipient table (in reply to RCPT TO command)

--4Xyz12.1738574146/mail.example.com
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.example.com
X-Postfix-Queue-ID: 4Xyz12
X-Postfix-Sender: rfc822; soporte@example.com
Arrival-Date: Mon,  3 Feb 2025 10:15:45 +0100 (CET)

Final-Recipient: rfc822; nobody@example.org
Original-Recipient: rfc822;nobody@example.org
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.org
Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.org>: Recipient address
    rejected: User unknown in local recipient table

--4Xyz12.1738574146/mail.example.com
Content-Description: Undelivered Message
Content-Type: message/rfc822
Content-Transfer-Encoding: 8bit

Return-Path: <soporte@example.com>
Received: by mail.example.com (Postfix, from userid 1000)
	id 4Xyz12; Mon,  3 Feb 2025 10:15:45 +0100 (CET)
From: Soporte <soporte@example.com>
To: nobody@example.org
Subject: [#ABC-DEF-GHJK] Ticket recibido
Message-Id: <ticket-42.1738574145@helpdesk.example.com>
Date: Mon,  3 Feb 2025 10:15:45 +0100 (CET)

Hola,

Hemos recibido su consulta.

--4Xyz12.1738574146/mail.example.com--
`

const eximBounce = `Return-path: <>
Envelope-to: soporte@example.com
From: Mail Delivery System <Mailer-Daemon@mx.example.net>
To: soporte@example.com
References: <ticket-43@helpdesk.example.com>
Content-Type: multipart/report; report-type=delivery-status; boundary=1738574146-eximdsn-1804289383
MIME-Version: 1.0
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1tew3K-0001ab-Cd@mx.example.net>
Date: Mon, 03 Feb 2025 10:15:46 +0100

--1738574146-eximdsn-1804289383
Content-type: text/plain; charset=us-ascii

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  nobody@example.org
    host mx.example.org [203.0.113.5]
    SMTP error from remote mail server after RCPT TO:<nobody@example.org>:
    550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table

--1738574146-eximdsn-1804289383
Content-type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Action: failed
Final-Recipient: rfc822;nobody@example.org
Status: 5.0.0
Remote-MTA: dns; mx.example.org
Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table

--1738574146-eximdsn-1804289383
Content-type: message/rfc822

Return-path: <soporte@example.com>
Received: from helpdesk.example.com ([198.51.100.7])
	by mx.example.net with esmtps (TLS1.3) tls TLS_AES_256_GCM_SHA384
	(Exim 4.96)
	(envelope-from <soporte@example.com>)
	id 1tew3J-0001aa-Bc
	for nobody@example.org; Mon, 03 Feb 2025 10:15:45 +0100
From: Soporte <soporte@example.com>
To: nobody@example.org
Subject: [#ABC-DEF-GHJK] Ticket received
Message-ID: <ticket-43@helpdesk.example.com>
Date: Mon, 03 Feb 2025 10:15:45 +0100

Hello.

--1738574146-eximdsn-1804289383--
`

// gmailBounce is Gmail's report; without returned, its returned message is
// left out.
func gmailBounce(returned bool) string {
	s := `Delivered-To: soporte@example.com
Return-Path: <>
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: soporte@example.com
Auto-Submitted: auto-replied
Subject: Delivery Status Notification (Failure)
References: <ticket-44@helpdesk.example.com>
In-Reply-To: <ticket-44@helpdesk.example.com>
X-Failed-Recipients: nobody@example.org
Message-ID: <67a08b12.050a0220.1c2b3.abcd.GMR@mx.google.com>
Date: Mon, 03 Feb 2025 01:15:46 -0800 (PST)
MIME-Version: 1.0
Content-Type: multipart/report; boundary="000000000000a1b2c3"; report-type=delivery-status

--000000000000a1b2c3
Content-Type: multipart/related; boundary="000000000000a1b2c4"

--000000000000a1b2c4
Content-Type: multipart/alternative; boundary="000000000000a1b2c5"

--000000000000a1b2c5
Content-Type: text/plain; charset="UTF-8"


** Address not found **

Your message wasn't delivered to nobody@example.org because the address couldn't be found, or is unable to receive mail.

--000000000000a1b2c5
Content-Type: text/html; charset="UTF-8"

<html><body><h2>Address not found</h2><p>Your message wasn't delivered to <b>nobody@example.org</b>.</p></body></html>
--000000000000a1b2c5--

--000000000000a1b2c4
Content-Type: image/png; name="icon.png"
Content-Disposition: attachment; filename="icon.png"
Content-Transfer-Encoding: base64
Content-ID: <icon.png>

iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==
--000000000000a1b2c4--

--000000000000a1b2c3
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com
Received-From-MTA: dns; soporte@example.com
Arrival-Date: Mon, 03 Feb 2025 01:15:45 -0800 (PST)
X-Original-Message-ID: <ticket-44@helpdesk.example.com>

Final-Recipient: rfc822; nobody@example.org
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.org. (203.0.113.5, the server for the domain example.org.)
Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does not exist. Please try
 550-5.1.1 double-checking the recipient's email address for typos or
 550 5.1.1 unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser a1si12qkb.123 - gsmtp
Last-Attempt-Date: Mon, 03 Feb 2025 01:15:46 -0800 (PST)

`
	if returned {
		s += `--000000000000a1b2c3
Content-Type: message/rfc822

DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=k1;
        h=subject:message-id:to:from:date; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;
        b=dGVzdA==
From: Soporte <soporte@example.com>
To: nobody@example.org
Subject: [#ABC-DEF-GHJK] Ticket received
Message-ID: <ticket-44@helpdesk.example.com>
Date: Mon, 03 Feb 2025 10:15:45 +0100

Hello.

`
	}
	return s + "--000000000000a1b2c3--\n"
}

var microsoftBounce = strings.ReplaceAll(`Received: from AM0PR01MB1234.eurprd01.prod.exchangelabs.com (2603:10a6:208:1::1)
 by AM0PR01MB5678.eurprd01.prod.exchangelabs.com with Microsoft SMTP Server; Mon, 3 Feb 2025 09:15:46 +0000
From: Microsoft Outlook <postmaster@contoso.onmicrosoft.com>
To: <soporte@example.com>
Date: Mon, 3 Feb 2025 09:15:46 +0000
Content-Type: multipart/report; report-type=delivery-status;
	boundary="ab1c2d3e-0000-4f5a-9b8c-7d6e5f4a3b2c"
X-MS-Exchange-Message-Is-Ndr:
Content-Language: en-US
Message-ID: <ab1c2d3e-0000-4f5a-9b8c-7d6e5f4a3b2c@AM0PR01MB1234.eurprd01.prod.exchangelabs.com>
In-Reply-To: <ticket-45@helpdesk.example.com>
References: <ticket-45@helpdesk.example.com>
Subject: Undeliverable: [#ABC-DEF-GHJK] Ticket received
Auto-Submitted: auto-replied
MIME-Version: 1.0

--ab1c2d3e-0000-4f5a-9b8c-7d6e5f4a3b2c
Content-Type: multipart/alternative; differences=Content-Type;
	boundary="cd2e3f4a-1111-4b6c-8d9e-0f1a2b3c4d5e"

--cd2e3f4a-1111-4b6c-8d9e-0f1a2b3c4d5e
Content-Type: text/plain; charset="us-ascii"
Content-Transfer-Encoding: quoted-printable

Your message to nobody@contoso.com couldn't be delivered.
nobody wasn't found at contoso.com.

--cd2e3f4a-1111-4b6c-8d9e-0f1a2b3c4d5e
Content-Type: text/html; charset="us-ascii"
Content-Transfer-Encoding: quoted-printable

<html><body><p>Your message to <b>nobody@contoso.com</b> couldn't be deliver=
ed.</p></body></html>
--cd2e3f4a-1111-4b6c-8d9e-0f1a2b3c4d5e--

--ab1c2d3e-0000-4f5a-9b8c-7d6e5f4a3b2c
Content-Type: message/delivery-status

Reporting-MTA: dns;AM0PR01MB1234.eurprd01.prod.exchangelabs.com
Received-From-MTA: dns;AM0PR01MB5678.eurprd01.prod.exchangelabs.com
Arrival-Date: Mon, 3 Feb 2025 09:15:45 +0000

Original-Recipient: rfc822;nobody@contoso.com
Final-Recipient: rfc822;nobody@contoso.com
Action: failed
Status: 5.1.10
Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient nobody@contoso.com not found by SMTP address lookup

--ab1c2d3e-0000-4f5a-9b8c-7d6e5f4a3b2c
Content-Type: text/rfc822-headers

Received: from helpdesk.example.com (198.51.100.7) by
 AM0PR01MB5678.eurprd01.prod.exchangelabs.com with Microsoft SMTP Server; Mon, 3 Feb 2025 09:15:45 +0000
From: Soporte <soporte@example.com>
To: <nobody@contoso.com>
Subject: [#ABC-DEF-GHJK] Ticket received
Message-ID: <ticket-45@helpdesk.example.com>
Date: Mon, 3 Feb 2025 10:15:45 +0100
MIME-Version: 1.0
Content-Type: text/plain

--ab1c2d3e-0000-4f5a-9b8c-7d6e5f4a3b2c--
`, "\n", "\r\n")

const postfixDelayed = `Return-Path: <>
Date: Mon,  3 Feb 2025 14:15:46 +0100 (CET)
From: MAILER-DAEMON@mail.example.com (Mail Delivery System)
Subject: Delayed Mail (still being retried)
To: soporte@example.com
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="5Abc34.1738588546/mail.example.com"

--5Abc34.1738588546/mail.example.com
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mail.example.com.

####################################################################
# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #
####################################################################

Your message could not be delivered for more than 4 hour(s).
It will be retried until it is 5 day(s) old.

--5Abc34.1738588546/mail.example.com
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.example.com
X-Postfix-Queue-ID: 5Abc34
X-Postfix-Sender: rfc822; soporte@example.com
Arrival-Date: Mon,  3 Feb 2025 10:15:45 +0100 (CET)

Final-Recipient: rfc822; slow@example.org
Original-Recipient: rfc822;slow@example.org
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to mx.example.org[203.0.113.7]:25:
    Connection timed out
Will-Retry-Until: Sat,  8 Feb 2025 10:15:45 +0100 (CET)

--5Abc34.1738588546/mail.example.com
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <soporte@example.com>
From: Soporte <soporte@example.com>
To: slow@example.org
Subject: [#ABC-DEF-GHJK] Ticket recibido
Message-Id: <ticket-46@helpdesk.example.com>

--5Abc34.1738588546/mail.example.com--
`

const qmailBounce = `Return-Path: <>
From: MAILER-DAEMON@mail.example.net
To: soporte@example.com
Subject: failure notice
Date: 3 Feb 2025 09:15:46 -0000
Message-ID: <20250203091546.12345.qmail@mail.example.net>

Hi. This is the qmail-send program at mail.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<nobody@example.net>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

Return-Path: <soporte@example.com>
From: Soporte <soporte@example.com>
To: nobody@example.net
Subject: [#ABC-DEF-GHJK] Ticket received
Message-ID: <ticket-47@helpdesk.example.com>

Hello.
`

// legacyBounce is a bounce that is no report: a notice and the returned
// message in a multipart/mixed.
const legacyBounce = `From: Postmaster <postmaster@legacy.example.net>
To: soporte@example.com
Subject: Undeliverable mail
Content-Type: multipart/mixed; boundary="legacy"

--legacy
Content-Type: text/plain

Your message could not be delivered: no such user.
--legacy
Content-Type: message/rfc822
Content-Disposition: attachment

From: Soporte <soporte@example.com>
To: nobody@legacy.example.net
Subject: [#ABC-DEF-GHJK] Ticket received
Message-ID: <ticket-48@helpdesk.example.com>

Hello.
--legacy--
`

// base64Bounce returns its message base64-encoded, as some servers do.
const base64Bounce = `From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: soporte@example.com
Subject: Returned mail
Content-Type: multipart/report; report-type=delivery-status; boundary="b64"

--b64
Content-Type: text/plain

Delivery failed.
--b64
Content-Type: message/delivery-status
Content-Transfer-Encoding: base64

UmVwb3J0aW5nLU1UQTogZG5zOyBteC5leGFtcGxlLm5ldA0KDQpGaW5hbC1SZWNpcGllbnQ6IHJm
YzgyMjsgbm9ib2R5QGV4YW1wbGUub3JnDQpBY3Rpb246IGZhaWxlZA0KU3RhdHVzOiA1LjEuMQ0K
--b64
Content-Type: message/rfc822
Content-Transfer-Encoding: base64

RnJvbTogU29wb3J0ZSA8c29wb3J0ZUBleGFtcGxlLmNvbT4NClRvOiBub2JvZHlAZXhhbXBsZS5v
cmcNClN1YmplY3Q6IFRpY2tldA0KTWVzc2FnZS1JRDogPHRpY2tldC00OUBoZWxwZGVzay5leGFt
cGxlLmNvbT4NCg0KSGVsbG8uDQo=
--b64--
`

// latin1Bounce has raw ISO-8859-1 in its headers and status fields, a NUL,
// a line that is no field, and no blank lines between its groups.
const latin1Bounce = "From: MAILER-DAEMON@correo.example.es (Sistema de correo)\n" +
	"To: soporte@example.com\n" +
	"Subject: Correo no entregado: buz\xf3n lleno\n" +
	"Content-Type: multipart/report; report-type=\"delivery-status\"; boundary=\"b1\"\n" +
	"\n" +
	"--b1\n" +
	"Content-Type: text/plain; charset=iso-8859-1\n" +
	"Content-Transfer-Encoding: 8bit\n" +
	"\n" +
	"No se pudo entregar el mensaje: buz\xf3n lleno.\n" +
	"\n" +
	"--b1\n" +
	"Content-Type: message/delivery-status\n" +
	"\n" +
	"Reporting-MTA: dns; correo.example.es\n" +
	"esta l\xednea no es un campo\n" +
	"Final-Recipient: rfc822; ana@example.es\n" +
	"Action: FAILED\n" +
	"Status: 5.2.2 (buz\xf3n lleno)\n" +
	"Diagnostic-Code: smtp; 552 5.2.2 Buz\xf3n lleno\x00\n" +
	"Final-Recipient: rfc822;<luis@example.es>\n" +
	"Action: delivered\n" +
	"Status: 2.0.0\n" +
	"--b1\n" +
	"Content-Type: text/rfc822-headers\n" +
	"\n" +
	"From: Soporte <soporte@example.com>\n" +
	"Subject: Re: Tu pedido \xf1\n" +
	"Message-ID: <ticket-50@helpdesk.example.com>\n" +
	"--b1--\n"

const globalBounce = `From: Mail Delivery System <MAILER-DAEMON@correo.example.es>
To: soporte@example.com
Subject: Undelivered Mail Returned to Sender
Content-Type: multipart/report; report-type=global-delivery-status; boundary="g"

--g
Content-Type: text/plain; charset=utf-8

No se pudo entregar a josé@ejemplo.es.
--g
Content-Type: message/global-delivery-status

Reporting-MTA: dns; correo.example.es

Original-Recipient: utf-8; josé@ejemplo.es
Final-Recipient: utf-8; josé@ejemplo.es
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 Usuario desconocido

--g
Content-Type: message/global-headers

From: Soporte <soporte@example.com>
Message-ID: <ticket-51@helpdesk.example.com>

--g--
`

const readReceipt = `From: Ana <ana@example.org>
To: soporte@example.com
Subject: Leído: [#ABC-DEF-GHJK] Ticket recibido
Content-Type: multipart/report; report-type=disposition-notification; boundary="mdn"

--mdn
Content-Type: text/plain

Su mensaje ha sido leído.
--mdn
Content-Type: message/disposition-notification

Final-Recipient: rfc822; ana@example.org
Original-Message-ID: <ticket-52@helpdesk.example.com>
Disposition: manual-action/MDN-sent-manually; displayed
--mdn--
`

const attachedMail = `From: Ana <ana@example.org>
To: soporte@example.com
Subject: Mirad este correo
Content-Type: multipart/mixed; boundary="fw"

--fw
Content-Type: text/plain

Os paso el correo que recibí.
--fw
Content-Type: message/rfc822

From: Proveedor <facturas@proveedor.example>
Message-ID: <factura-1@proveedor.example>
Subject: Factura

Adjuntamos la factura.
--fw--
`

// report builds a delivery report from MAILER-DAEMON with the given parts,
// each "Content-Type: …\n\nbody".
func report(parts ...string) string {
	var b strings.Builder
	b.WriteString("From: MAILER-DAEMON@mx.example.net\nSubject: Returned mail\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\n\n")
	for _, p := range parts {
		b.WriteString("--r\n" + p + "\n")
	}
	b.WriteString("--r--\n")
	return b.String()
}

func dsnCases() []dsnCase {
	var manyRecipients strings.Builder
	manyRecipients.WriteString("Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n")
	for i := range 2000 {
		fmt.Fprintf(&manyRecipients, "\nFinal-Recipient: rfc822; r%d@example.org\nAction: failed\nStatus: 5.1.1\n", i)
	}
	longDiagnostic := strings.Repeat("buzón ", 200)
	bigHeaders := "Content-Type: message/rfc822\n\n" + strings.Repeat("Received: from relay.example.net by mx.example.net; Mon, 3 Feb 2025 10:15:45 +0100\n", 1000) +
		"Message-ID: <too-far@helpdesk.example.com>\n\nHello.\n"

	return []dsnCase{
		{
			name: "postfix",
			raw:  postfixBounce,
			want: &DeliveryReport{
				OriginalMessageID: "ticket-42.1738574145@helpdesk.example.com",
				Standard:          true,
				Recipients: []DSNRecipient{{
					Address: "nobody@example.org", Action: "failed", Status: "5.1.1",
					Diagnostic: "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in local recipient table",
				}},
			},
		},
		{
			name: "exim",
			raw:  eximBounce,
			want: &DeliveryReport{
				OriginalMessageID: "ticket-43@helpdesk.example.com",
				Standard:          true,
				Recipients: []DSNRecipient{{
					Address: "nobody@example.org", Action: "failed", Status: "5.0.0",
					Diagnostic: "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
				}},
			},
		},
		{
			name: "gmail",
			raw:  gmailBounce(true),
			want: &DeliveryReport{
				OriginalMessageID: "ticket-44@helpdesk.example.com",
				Standard:          true,
				Recipients: []DSNRecipient{{
					Address: "nobody@example.org", Action: "failed", Status: "5.1.1",
					Diagnostic: "550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 double-checking the recipient's email address for typos or 550 5.1.1 unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser a1si12qkb.123 - gsmtp",
				}},
			},
		},
		{
			name: "gmail without the returned message: its X-Original-Message-ID",
			raw:  gmailBounce(false),
			want: &DeliveryReport{
				OriginalMessageID: "ticket-44@helpdesk.example.com",
				Standard:          true,
				Recipients: []DSNRecipient{{
					Address: "nobody@example.org", Action: "failed", Status: "5.1.1",
					Diagnostic: "550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 double-checking the recipient's email address for typos or 550 5.1.1 unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser a1si12qkb.123 - gsmtp",
				}},
			},
		},
		{
			name: "microsoft 365, returned headers only",
			raw:  microsoftBounce,
			want: &DeliveryReport{
				OriginalMessageID: "ticket-45@helpdesk.example.com",
				Standard:          true,
				Recipients: []DSNRecipient{{
					Address: "nobody@contoso.com", Action: "failed", Status: "5.1.10",
					Diagnostic: "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient nobody@contoso.com not found by SMTP address lookup",
				}},
			},
		},
		{
			name: "postfix delayed",
			raw:  postfixDelayed,
			want: &DeliveryReport{
				OriginalMessageID: "ticket-46@helpdesk.example.com",
				Standard:          true,
				Recipients: []DSNRecipient{{
					Address: "slow@example.org", Action: "delayed", Status: "4.4.1",
					Diagnostic: "connect to mx.example.org[203.0.113.7]:25: Connection timed out",
				}},
			},
		},
		{
			name: "non-standard, returned message attached",
			raw:  legacyBounce,
			want: &DeliveryReport{OriginalMessageID: "ticket-48@helpdesk.example.com"},
		},
		{
			name: "base64 parts",
			raw:  base64Bounce,
			want: &DeliveryReport{
				OriginalMessageID: "ticket-49@helpdesk.example.com",
				Standard:          true,
				Recipients:        []DSNRecipient{{Address: "nobody@example.org", Action: "failed", Status: "5.1.1"}},
			},
		},
		{
			name: "8-bit headers, garbage and missing blank lines",
			raw:  latin1Bounce,
			want: &DeliveryReport{
				OriginalMessageID: "ticket-50@helpdesk.example.com",
				Standard:          true,
				Recipients: []DSNRecipient{
					{Address: "ana@example.es", Action: "failed", Status: "5.2.2", Diagnostic: "552 5.2.2 Buzón lleno"},
					{Address: "luis@example.es", Action: "delivered", Status: "2.0.0"},
				},
			},
		},
		{
			name: "global delivery status",
			raw:  globalBounce,
			want: &DeliveryReport{
				OriginalMessageID: "ticket-51@helpdesk.example.com",
				Standard:          true,
				Recipients: []DSNRecipient{{
					Address: "josé@ejemplo.es", Action: "failed", Status: "5.1.1", Diagnostic: "550 5.1.1 Usuario desconocido",
				}},
			},
		},
		{
			name: "many recipients",
			raw:  report(manyRecipients.String()),
			want: &DeliveryReport{Standard: true, Recipients: func() []DSNRecipient {
				// What 64 KiB hold, up to maxReportRecipient.
				var rs []DSNRecipient
				for i := range maxReportRecipient {
					rs = append(rs, DSNRecipient{Address: fmt.Sprintf("r%d@example.org", i), Action: "failed", Status: "5.1.1"})
				}
				return rs
			}()},
		},
		{
			name: "long diagnostic, Message-ID past 64 KiB",
			raw: report("Content-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@example.org\nStatus: 5.2.2\nDiagnostic-Code: smtp; "+longDiagnostic+"\n",
				bigHeaders),
			want: &DeliveryReport{Standard: true, Recipients: []DSNRecipient{{
				Address: "a@example.org", Status: "5.2.2", Diagnostic: strings.Repeat("buzón ", 83) + "bu", // 500 characters
			}}},
		},
		{
			name: "final recipient empty, original one given",
			raw: report("Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n" +
				"Final-Recipient: RFC822; <>\nOriginal-Recipient: rfc822;orig@example.org\nAction: Failed\nStatus: 5.1.1 (no such user)\n\n" +
				"Final-Recipient: rfc822; < spaced@example.org >\nAction: relayed\nStatus: 2.0.0\n"),
			want: &DeliveryReport{Standard: true, Recipients: []DSNRecipient{
				{Address: "orig@example.org", Action: "failed", Status: "5.1.1"},
				{Address: "spaced@example.org", Action: "relayed", Status: "2.0.0"},
			}},
		},
		{
			name: "report without parts",
			raw:  report(),
			want: &DeliveryReport{Standard: true},
		},
		{name: "qmail, returned message in the text only", raw: qmailBounce},
		{name: "read receipt", raw: readReceipt},
		{name: "mail attached by a person", raw: attachedMail},
	}
}

func TestParseDeliveryReport(t *testing.T) {
	for _, tc := range dsnCases() {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(strings.NewReader(tc.raw), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			got, ok := ParseDeliveryReport(p)
			if ok != (tc.want != nil) {
				t.Fatalf("ParseDeliveryReport reports %v, want %v (%+v)", ok, tc.want != nil, got)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseDeliveryReport:\n%+v\nwant:\n%+v", got, tc.want)
			}
		})
	}
}

// TestReportPartsAreAttachments checks what ParseDeliveryReport relies on:
// Parse keeps the parts of a report, text/rfc822-headers included, out of
// the text, as attachments.
func TestReportPartsAreAttachments(t *testing.T) {
	p, err := Parse(strings.NewReader(microsoftBounce), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var types []string
	for _, a := range p.Attachments {
		types = append(types, a.ContentType)
	}
	if want := []string{"message/delivery-status", "text/rfc822-headers"}; !reflect.DeepEqual(types, want) {
		t.Errorf("attachments %q, want %q", types, want)
	}
	if strings.Contains(p.Text, "Message-ID") || !strings.Contains(p.Text, "couldn't be delivered") {
		t.Errorf("text of the report: %q", p.Text)
	}
}

func TestDeliveryReportFailed(t *testing.T) {
	tests := []struct {
		name       string
		recipients []DSNRecipient
		want       bool
	}{
		{"failed", []DSNRecipient{{Action: "failed", Status: "5.1.1"}}, true},
		{"permanent status without action", []DSNRecipient{{Status: "5.7.1"}}, true},
		{"delayed", []DSNRecipient{{Action: "delayed", Status: "4.4.1"}}, false},
		{"delivered and failed", []DSNRecipient{{Action: "delivered", Status: "2.0.0"}, {Action: "failed", Status: "4.0.0"}}, true},
		{"delivered and relayed", []DSNRecipient{{Action: "delivered", Status: "2.0.0"}, {Action: "relayed", Status: "2.0.0"}}, false},
		{"no recipients", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &DeliveryReport{Recipients: tc.recipients}
			if got := r.Failed(); got != tc.want {
				t.Errorf("Failed() = %v, want %v", got, tc.want)
			}
		})
	}
	var none *DeliveryReport
	if none.Failed() {
		t.Error("a nil report failed")
	}
}
