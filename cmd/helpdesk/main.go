// Command helpdesk is the email-driven helpdesk gateway: it turns mail into
// tickets, acknowledges them, and serves the customer's ticket pages.
//
//	helpdesk serve [--demo]
//	helpdesk migrate
//	helpdesk department add --slug S --name N --address A [--locale es|en]
//	helpdesk department list
//	helpdesk mailbox add|oauth|list|test|enable|disable|remove
//	helpdesk inbound list|show|release|bounces
//	helpdesk agent add|list|update
//	helpdesk canned add|list|remove
//	helpdesk kb import|export
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/helpdeskgw/helpdesk/tickets"
)

const usage = `usage:
  helpdesk serve [--demo]      run the SMTP listener, IMAP pollers, outbox sender and web server
  helpdesk migrate             apply pending database migrations and exit
  helpdesk department add --slug S --name N --address A [--locale es|en]
  helpdesk department list
  helpdesk department update --slug S [--name N] [--locale es|en] [--auto-resolve-days N]
  helpdesk mailbox add --department S --url imaps://user@host:993/INBOX
                       (--password-env VAR | --password-file F) [--move-to FOLDER]
                       [--poll-interval 1m] [--no-check]
  helpdesk mailbox add --department S --url imaps://user@host:993/INBOX
                       --oauth microsoft|google|generic --client-id ID [--tenant T]
                       [--client-secret-env VAR | --client-secret-file F] [--client-credentials]
                       [--token-url U (--device-url U | --auth-url U)] [--scope S]... [--move-to FOLDER] [--no-check]
  helpdesk mailbox oauth --department S [--browser]
                       authorize an OAuth2 mailbox: sign in with a code on another device, or in a browser
  helpdesk mailbox list
  helpdesk mailbox test|enable|disable|remove --department S
  helpdesk inbound list [--disposition quarantined|draft|auto_reply|bounce|ticket|duplicate] [--limit N] [--before ID]
  helpdesk inbound show [--raw] ID     what became of a received mail, or its raw source
  helpdesk inbound release ID          open a ticket for a quarantined mail
  helpdesk inbound bounces             addresses mail to which has bounced
  helpdesk agent add --email E --name N [--department S]... [--role agent|admin] [--password-file F]
                       (the password is read from stdin unless --password-file is given)
  helpdesk agent list
  helpdesk agent update --email E [--name N] [--role R] [--department S]... [--disable|--enable] [--password]
  helpdesk canned add --title T --body-file F [--department S]
  helpdesk canned list | remove ID
  helpdesk kb import [--dry-run] DIR
                       import knowledge base articles, all or none, from DIR/DEPARTMENT/LANGUAGE/SLUG.md:
                       Markdown after a YAML front matter between two lines "---" (title, category,
                       keywords, state: draft, the default, or published). Department, language and slug
                       come from the path; a front matter that repeats one must agree with it, or the file
                       is refused. Dot files are skipped; links are followed only to files inside DIR.
                       --dry-run only reads and checks the files, without the database: departments and
                       the store's field limits are checked by the real import
  helpdesk kb export [--force] DIR     write every article to that layout; --force replaces files there

Configuration comes from HELPDESK_* environment variables; see the README.
`

func main() {
	// The live heap is small and nearly everything else is one mail's
	// garbage: letting the heap grow to five times the live data before
	// collecting costs tens of megabytes and saves a fifth of the CPU under
	// load (measured with make bench).
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runIO(ctx, os.Args[1:], os.Environ(), os.Stdin, os.Stdout); err != nil {
		var u usageError
		if errors.As(err, &u) {
			fmt.Fprintf(os.Stderr, "helpdesk: %v\n\n%s", err, usage)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "helpdesk: %v\n", err)
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// run runs a command with nothing on its standard input.
func run(ctx context.Context, args, environ []string, stdout io.Writer) error {
	return runIO(ctx, args, environ, strings.NewReader(""), stdout)
}

func runIO(ctx context.Context, args, environ []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"no command given"}
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], environ)
	case "migrate":
		return cmdMigrate(ctx, args[1:], environ, stdout)
	case "department":
		if len(args) < 2 {
			return usageError{"department: want add, list or update"}
		}
		switch args[1] {
		case "add":
			return cmdDepartmentAdd(ctx, args[2:], environ, stdout)
		case "list":
			return cmdDepartmentList(ctx, args[2:], environ, stdout)
		case "update":
			return cmdDepartmentUpdate(ctx, args[2:], environ, stdout)
		}
		return usageError{fmt.Sprintf("department %s: want add, list or update", args[1])}
	case "mailbox":
		return cmdMailbox(ctx, args[1:], environ, stdin, stdout)
	case "inbound":
		return cmdInbound(ctx, args[1:], environ, stdout)
	case "agent":
		return cmdAgent(ctx, args[1:], environ, stdin, stdout)
	case "canned":
		return cmdCanned(ctx, args[1:], environ, stdout)
	case "kb":
		return cmdKB(ctx, args[1:], environ, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("%s: %v", fs.Name(), err)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

func cmdServe(ctx context.Context, args, environ []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	demo := fs.Bool("demo", false, "create the demo department (soporte, support@localhost) when there is none")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(environ, true)
	if err != nil {
		return err
	}
	log := cfg.logger()
	app, err := NewApp(ctx, cfg, log, *demo)
	if err != nil {
		return err
	}
	return app.Run(ctx)
}

// withStore runs fn with a store on a migrated database.
func withStore(ctx context.Context, environ []string, fn func(*tickets.Store) error) error {
	cfg, err := loadConfig(environ, false)
	if err != nil {
		return err
	}
	log := cfg.logger()
	pool, err := openPool(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := migrate(ctx, pool); err != nil {
		return err
	}
	return fn(tickets.New(tickets.Options{Pool: pool, Logger: log}))
}

func cmdMigrate(ctx context.Context, args, environ []string, stdout io.Writer) error {
	if err := parseFlags(flag.NewFlagSet("migrate", flag.ContinueOnError), args); err != nil {
		return err
	}
	cfg, err := loadConfig(environ, false)
	if err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg, cfg.logger())
	if err != nil {
		return err
	}
	defer pool.Close()
	v, err := migrate(ctx, pool)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "database at schema version %d\n", v)
	return nil
}

func cmdDepartmentAdd(ctx context.Context, args, environ []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("department add", flag.ContinueOnError)
	slug := fs.String("slug", "", "short name used in commands and URLs (lower case)")
	name := fs.String("name", "", "name customers see")
	address := fs.String("address", "", "address customers write to")
	locale := fs.String("locale", "es", "language of the department's mail: es or en")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *slug == "" || *name == "" || *address == "" {
		return usageError{"department add: --slug, --name and --address are required"}
	}
	return withStore(ctx, environ, func(s *tickets.Store) error {
		d, err := s.AddDepartment(ctx, tickets.Department{Slug: *slug, Name: *name, Address: *address, Locale: *locale})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "department %s created: %s <%s>, %s\n", d.Slug, d.Name, d.Address, d.Locale)
		return nil
	})
}

func cmdDepartmentUpdate(ctx context.Context, args, environ []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("department update", flag.ContinueOnError)
	slug := fs.String("slug", "", "the department to change")
	name := fs.String("name", "", "new name")
	locale := fs.String("locale", "", "new language of its mail: es or en")
	days := fs.Int("auto-resolve-days", -1, "resolve tickets left in Replied this many days (0 turns it off)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *slug == "" {
		return usageError{"department update: --slug is required"}
	}
	return withStore(ctx, environ, func(s *tickets.Store) error {
		d, err := s.DepartmentBySlug(ctx, *slug)
		if err != nil {
			return err
		}
		if *name != "" {
			d.Name = *name
		}
		if *locale != "" {
			d.Locale = *locale
		}
		if *days >= 0 {
			d.AutoResolveDays = *days
		}
		if err := s.UpdateDepartment(ctx, cliActor(), d); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "department %s updated: %s, %s, auto-resolve after %d days (0: never)\n", d.Slug, d.Name, d.Locale, d.AutoResolveDays)
		return nil
	})
}

func cmdDepartmentList(ctx context.Context, args, environ []string, stdout io.Writer) error {
	if err := parseFlags(flag.NewFlagSet("department list", flag.ContinueOnError), args); err != nil {
		return err
	}
	return withStore(ctx, environ, func(s *tickets.Store) error {
		list, err := s.Departments(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SLUG\tNAME\tADDRESS\tLOCALE")
		for _, d := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Slug, d.Name, d.Address, d.Locale)
		}
		return tw.Flush()
	})
}
