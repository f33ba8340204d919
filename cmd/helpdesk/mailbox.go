package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/helpdeskgw/helpdesk/internal/oauth"
	"github.com/helpdeskgw/helpdesk/mailin"
	"github.com/helpdeskgw/helpdesk/tickets"
)

func cmdMailbox(ctx context.Context, args, environ []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"mailbox: want add, oauth, list, test, enable, disable or remove"}
	}
	switch args[0] {
	case "add":
		return cmdMailboxAdd(ctx, args[1:], environ, stdout)
	case "list":
		return cmdMailboxList(ctx, args[1:], environ, stdout)
	case "test":
		return cmdMailboxTest(ctx, args[1:], environ, stdout)
	case "oauth":
		return cmdMailboxOAuth(ctx, args[1:], environ, stdin, stdout)
	case "enable", "disable", "remove":
		return cmdMailboxChange(ctx, args[0], args[1:], environ, stdout)
	}
	return usageError{fmt.Sprintf("mailbox %s: want add, oauth, list, test, enable, disable or remove", args[0])}
}

// lookupIn finds a variable in environ, as os.LookupEnv does in the
// process's environment.
func lookupIn(environ []string) func(string) (string, bool) {
	return func(key string) (string, bool) {
		for i := len(environ) - 1; i >= 0; i-- {
			if k, v, ok := strings.Cut(environ[i], "="); ok && k == key {
				return v, true
			}
		}
		return "", false
	}
}

func cmdMailboxAdd(ctx context.Context, args, environ []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("mailbox add", flag.ContinueOnError)
	dept := fs.String("department", "", "slug of the department the mail is for")
	rawURL := fs.String("url", "", "imaps://user@host:993/INBOX, or imap://… for STARTTLS")
	passwordEnv := fs.String("password-env", "", "variable holding the password (in the gateway's environment too)")
	passwordFile := fs.String("password-file", "", "file holding the password")
	moveTo := fs.String("move-to", "", "folder to move processed mail to (default: keep it, flagged \\Seen)")
	poll := fs.Duration("poll-interval", tickets.DefaultPollInterval, "how often to look for mail when the server has no IDLE")
	noCheck := fs.Bool("no-check", false, "attach without logging in first")
	var oauthOpts oauthFlags
	oauthOpts.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dept == "" || *rawURL == "" {
		return usageError{"mailbox add: --department and --url are required"}
	}
	addr, err := mailin.ParseMailboxURL(*rawURL)
	if err != nil {
		return err
	}
	settings, useOAuth, err := oauthOpts.settings()
	if err != nil {
		return usageError{"mailbox add: " + err.Error()}
	}
	if useOAuth {
		if *passwordEnv != "" || *passwordFile != "" {
			return usageError{"mailbox add: --oauth logs in without a password; drop --password-env and --password-file"}
		}
		return addOAuthMailbox(ctx, tickets.Mailbox{Department: tickets.Department{Slug: *dept}, URL: addr.String(),
			MoveTo: *moveTo, PollInterval: *poll, Auth: tickets.AuthOAuth2, OAuth: settings}, *noCheck, environ, stdout)
	}
	ref, err := mailin.PasswordRef(*passwordEnv, *passwordFile)
	if err != nil {
		return usageError{"mailbox add: " + err.Error()}
	}
	return withStore(ctx, environ, func(s *tickets.Store) error {
		mb := tickets.Mailbox{Department: tickets.Department{Slug: *dept}, URL: addr.String(), PasswordRef: ref,
			MoveTo: *moveTo, PollInterval: *poll}
		if _, err := s.DepartmentBySlug(ctx, *dept); err != nil {
			return err
		}
		if !*noCheck {
			r, err := checkMailbox(ctx, mb, environ, nil)
			if err != nil {
				return fmt.Errorf("%w\n(nothing was attached; fix it, or add --no-check to attach anyway)", err)
			}
			printReport(stdout, r)
		}
		mb, err := s.AddMailbox(ctx, mb)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "mailbox attached to %s: %s, password from %s; running instances pick it up within seconds\n",
			mb.Department.Slug, mb.URL, mb.PasswordRef)
		return nil
	})
}

// checkMailbox logs in to the mailbox and looks at its folder; tokens
// serves OAuth2 mailboxes.
func checkMailbox(ctx context.Context, mb tickets.Mailbox, environ []string, tokens mailin.TokenSource) (mailin.MailboxReport, error) {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return mailin.CheckMailboxWith(cctx, mb, mailin.Credentials{LookupEnv: lookupIn(environ), Tokens: tokens}, nil)
}

func printReport(w io.Writer, r mailin.MailboxReport) {
	yes := map[bool]string{true: "yes", false: "no"}
	fmt.Fprintf(w, "logged in to %s over %s with %s; folder %q has %d messages (UIDVALIDITY %d, next UID %d); IDLE: %s, MOVE: %s\n",
		r.Address.Host, r.Address.Security, r.Mechanism, r.Address.Folder, r.Messages, r.UIDValidity, r.UIDNext, yes[r.IDLE], yes[r.MOVE])
}

// addOAuthMailbox attaches an OAuth2 mailbox. With client credentials its
// first token is obtained and tried at once (unless noCheck); otherwise a
// person authorizes it next, with `mailbox oauth`.
func addOAuthMailbox(ctx context.Context, mb tickets.Mailbox, noCheck bool, environ []string, stdout io.Writer) error {
	return withStore(ctx, environ, func(s *tickets.Store) error {
		mb, err := s.AddMailbox(ctx, mb)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "mailbox attached to %s: %s, OAuth2 with %s\n", mb.Department.Slug, mb.URL, authSummary(mb))
		if !mb.OAuth.ClientCredentials || noCheck {
			fmt.Fprintf(stdout, "authorize it now with: helpdesk mailbox oauth --department %s\n", mb.Department.Slug)
			return nil
		}
		sources, err := cliTokenSources(s, environ)
		if err == nil {
			err = authorize(ctx, s, sources, mb, oauth.Prompt{}, environ, stdout)
		}
		if err != nil {
			if rerr := s.RemoveMailbox(ctx, mb.Department.Slug); rerr != nil {
				return errors.Join(err, rerr)
			}
			return fmt.Errorf("%w\n(nothing was attached; fix it, or add --no-check to attach anyway)", err)
		}
		return nil
	})
}

func cmdMailboxTest(ctx context.Context, args, environ []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("mailbox test", flag.ContinueOnError)
	dept := fs.String("department", "", "slug of the department whose mailbox to check")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dept == "" {
		return usageError{"mailbox test: --department is required"}
	}
	return withStore(ctx, environ, func(s *tickets.Store) error {
		mb, err := s.MailboxOf(ctx, *dept)
		if err != nil {
			return err
		}
		var tokens mailin.TokenSource
		if mb.Auth == tickets.AuthOAuth2 {
			sources, err := cliTokenSources(s, environ)
			if err != nil {
				return err
			}
			tokens = sources
		}
		r, err := checkMailbox(ctx, mb, environ, tokens)
		if err != nil {
			return fmt.Errorf("mailbox of %s: %w", *dept, err)
		}
		printReport(stdout, r)
		return nil
	})
}

func cmdMailboxChange(ctx context.Context, verb string, args, environ []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("mailbox "+verb, flag.ContinueOnError)
	dept := fs.String("department", "", "slug of the department")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dept == "" {
		return usageError{fmt.Sprintf("mailbox %s: --department is required", verb)}
	}
	return withStore(ctx, environ, func(s *tickets.Store) error {
		var err error
		switch verb {
		case "enable":
			err = s.SetMailboxEnabled(ctx, *dept, true)
		case "disable":
			err = s.SetMailboxEnabled(ctx, *dept, false)
		default:
			err = s.RemoveMailbox(ctx, *dept)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "mailbox of %s: %sd\n", *dept, strings.TrimSuffix(verb, "e"))
		return nil
	})
}

func cmdMailboxList(ctx context.Context, args, environ []string, stdout io.Writer) error {
	if err := parseFlags(flag.NewFlagSet("mailbox list", flag.ContinueOnError), args); err != nil {
		return err
	}
	return withStore(ctx, environ, func(s *tickets.Store) error {
		list, err := s.Mailboxes(ctx)
		if err != nil {
			return err
		}
		now := time.Now()
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DEPARTMENT\tURL\tAUTH\tSTATE\tSINCE\tBY\tLAST UID\tINGESTED\tLAST SUCCESS\tLAST ERROR")
		for _, m := range list {
			lastErr := "-"
			if m.LastError != "" {
				lastErr = fmt.Sprintf("%s ago: %s", ago(now, m.LastErrorAt), m.LastError)
			}
			success := "never"
			if !m.LastSuccessAt.IsZero() {
				success = ago(now, m.LastSuccessAt) + " ago"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s ago\t%s\t%d/%d\t%d\t%s\t%s\n", m.Department.Slug, m.URL, authSummary(m), m.State,
				ago(now, m.StateAt), cmp.Or(m.Holder, "-"), m.UIDValidity, m.LastUID, m.Ingested, success, lastErr)
		}
		return tw.Flush()
	})
}

func ago(now, t time.Time) string {
	d := now.Sub(t)
	if d < time.Second {
		return "0s"
	}
	return d.Round(time.Second).String()
}
