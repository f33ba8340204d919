package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/helpdeskgw/helpdesk/mailin"
	"github.com/helpdeskgw/helpdesk/tickets"
)

func cmdInbound(ctx context.Context, args, environ []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"inbound: want list, show, release or bounces"}
	}
	switch args[0] {
	case "list":
		return cmdInboundList(ctx, args[1:], environ, stdout)
	case "show":
		return cmdInboundShow(ctx, args[1:], environ, stdout)
	case "release":
		return cmdInboundRelease(ctx, args[1:], environ, stdout)
	case "bounces":
		return cmdInboundBounces(ctx, args[1:], environ, stdout)
	}
	return usageError{fmt.Sprintf("inbound %s: want list, show, release or bounces", args[0])}
}

var dispositions = []tickets.Disposition{
	tickets.DispositionTicket, tickets.DispositionDuplicate, tickets.DispositionQuarantined,
	tickets.DispositionDraft, tickets.DispositionAutoReply, tickets.DispositionBounce,
}

func cmdInboundList(ctx context.Context, args, environ []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("inbound list", flag.ContinueOnError)
	disp := fs.String("disposition", "", "only mail that became this: ticket, duplicate, quarantined, draft, auto_reply or bounce")
	limit := fs.Int("limit", 50, "how many, newest first")
	before := fs.Int64("before", 0, "only mail older than this inbound ID (to page)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *disp != "" && !validDisposition(*disp) {
		return usageError{fmt.Sprintf("inbound list: --disposition %q: want one of %v", *disp, dispositions)}
	}
	return withStore(ctx, environ, func(s *tickets.Store) error {
		list, err := s.Inbound(ctx, tickets.InboundFilter{Disposition: tickets.Disposition(*disp), Limit: *limit, BeforeID: *before})
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tRECEIVED\tDEPARTMENT\tFROM\tSUBJECT\tDISPOSITION\tTICKET\tDMARC\tREASON")
		for _, e := range list {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.ReceivedAt.UTC().Format(time.DateTime), e.Department,
				cmp.Or(e.FromAddress, "-"), cmp.Or(clip(e.Subject, 50), "-"), e.Disposition, cmp.Or(e.TrackingID, "-"), cmp.Or(e.AuthDMARC, "-"), cmp.Or(e.Reason, "-"))
		}
		return tw.Flush()
	})
}

func validDisposition(d string) bool {
	for _, v := range dispositions {
		if string(v) == d {
			return true
		}
	}
	return false
}

// inboundID reads the one argument of show and release.
func inboundID(fs *flag.FlagSet, args []string) (int64, error) {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return 0, usageError{fmt.Sprintf("%s: %v", fs.Name(), err)}
	}
	if fs.NArg() != 1 {
		return 0, usageError{fs.Name() + ": want the inbound ID (see inbound list)"}
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil || id <= 0 {
		return 0, usageError{fmt.Sprintf("%s: %q is not an inbound ID", fs.Name(), fs.Arg(0))}
	}
	return id, nil
}

func cmdInboundShow(ctx context.Context, args, environ []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("inbound show", flag.ContinueOnError)
	raw := fs.Bool("raw", false, "write the mail's raw source, as received, and nothing else")
	id, err := inboundID(fs, args)
	if err != nil {
		return err
	}
	return withStore(ctx, environ, func(s *tickets.Store) error {
		e, err := s.InboundMailEntry(ctx, id)
		if err != nil {
			return err
		}
		if *raw {
			return s.WriteBlob(ctx, e.RawSHA256, stdout)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		for _, f := range [][2]string{
			{"ID", strconv.FormatInt(e.ID, 10)}, {"Received", e.ReceivedAt.UTC().Format(time.RFC3339)},
			{"Source", e.Source + " " + e.SourceRef}, {"Department", e.Department}, {"Envelope from", e.EnvelopeFrom},
			{"From", e.FromAddress}, {"Subject", e.Subject}, {"Message-ID", e.MessageID}, {"Size", strconv.FormatInt(e.RawSize, 10)},
			{"Disposition", string(e.Disposition)}, {"Reason", e.Reason}, {"Ticket", e.TrackingID},
			{"SPF / DKIM / DMARC", fmt.Sprintf("%s / %s / %s", cmp.Or(e.AuthSPF, "-"), cmp.Or(e.AuthDKIM, "-"), cmp.Or(e.AuthDMARC, "-"))},
			{"Authentication", e.AuthDetail},
		} {
			fmt.Fprintf(tw, "%s:\t%s\n", f[0], cmp.Or(f[1], "-"))
		}
		if e.ParseProblems != "" {
			fmt.Fprintf(tw, "Problems:\t%s\n", strings.ReplaceAll(e.ParseProblems, "\n", "\n\t"))
		}
		fmt.Fprintf(tw, "Raw source:\thelpdesk inbound show --raw %d\n", e.ID)
		return tw.Flush()
	})
}

func cmdInboundRelease(ctx context.Context, args, environ []string, stdout io.Writer) error {
	id, err := inboundID(flag.NewFlagSet("inbound release", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	return withStore(ctx, environ, func(s *tickets.Store) error {
		rcv := mailin.NewReceiver(mailin.ReceiverOptions{Store: s})
		res, err := rcv.Release(ctx, s, id)
		if err != nil {
			return err
		}
		ack := "acknowledgement queued"
		if !res.AckQueued {
			ack = "not acknowledged (automatic mail or DMARC failure)"
		}
		fmt.Fprintf(stdout, "inbound mail %d released: ticket %s, %s\n", id, res.TrackingID, ack)
		return nil
	})
}

func cmdInboundBounces(ctx context.Context, args, environ []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("inbound bounces", flag.ContinueOnError)
	limit := fs.Int("limit", 100, "how many, latest first")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return withStore(ctx, environ, func(s *tickets.Store) error {
		list, err := s.AddressBounces(ctx, *limit)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ADDRESS\tBOUNCES\tFIRST\tLAST\tSTATUS\tDIAGNOSTIC")
		for _, b := range list {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", b.Address, b.Bounces, b.FirstAt.UTC().Format(time.DateTime),
				b.LastAt.UTC().Format(time.DateTime), cmp.Or(b.LastStatus, "-"), cmp.Or(clip(b.LastDiagnostic, 80), "-"))
		}
		return tw.Flush()
	})
}

// clip shortens s to at most n characters for a table cell.
func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
