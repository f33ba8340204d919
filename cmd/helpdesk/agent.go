package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// stringList is a flag that may be given several times.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// cliActor is who changes things from the command line, for the audit log.
func cliActor() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return "cli:" + name
}

func cmdAgent(ctx context.Context, args, environ []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"agent: want add, list or update"}
	}
	switch args[0] {
	case "add":
		return cmdAgentAdd(ctx, args[1:], environ, stdin, stdout)
	case "list":
		return cmdAgentList(ctx, args[1:], environ, stdout)
	case "update":
		return cmdAgentUpdate(ctx, args[1:], environ, stdin, stdout)
	}
	return usageError{fmt.Sprintf("agent %s: want add, list or update", args[0])}
}

// readPassword reads a password from a file, or else the first line of
// stdin (so it never shows in the process list or the shell's history).
func readPassword(file string, stdin io.Reader) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--password-file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("password: give it on stdin (one line) or with --password-file: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func cmdAgentAdd(ctx context.Context, args, environ []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("agent add", flag.ContinueOnError)
	email := fs.String("email", "", "the agent's address (their login)")
	name := fs.String("name", "", "the agent's name, as customers see it")
	role := fs.String("role", "agent", "agent (works their departments) or admin (sees all, manages the desk)")
	passwordFile := fs.String("password-file", "", "file holding the password (default: read a line from stdin)")
	var depts stringList
	fs.Var(&depts, "department", "slug of a department the agent works (repeat, or comma-separate)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *email == "" || *name == "" {
		return usageError{"agent add: --email and --name are required"}
	}
	password, err := readPassword(*passwordFile, stdin)
	if err != nil {
		return err
	}
	return withStore(ctx, environ, func(s *tickets.Store) error {
		a, err := s.AddAgent(ctx, cliActor(), tickets.NewAgent{Email: *email, Name: *name, Role: tickets.Role(*role),
			Password: password, DepartmentSlugs: depts})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "agent %d created: %s <%s>, %s, departments: %s\n", a.ID, a.Name, a.Email, a.Role, departmentSlugs(a))
		return nil
	})
}

func departmentSlugs(a tickets.Agent) string {
	if a.IsAdmin() && len(a.Departments) == 0 {
		return "all (admin)"
	}
	var slugs []string
	for _, d := range a.Departments {
		slugs = append(slugs, d.Slug)
	}
	if len(slugs) == 0 {
		return "none"
	}
	return strings.Join(slugs, ",")
}

func cmdAgentList(ctx context.Context, args, environ []string, stdout io.Writer) error {
	if err := parseFlags(flag.NewFlagSet("agent list", flag.ContinueOnError), args); err != nil {
		return err
	}
	return withStore(ctx, environ, func(s *tickets.Store) error {
		list, err := s.Agents(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tROLE\tDEPARTMENTS\tSTATE\tLAST LOGIN")
		for _, a := range list {
			state, last := "active", "never"
			if a.Disabled {
				state = "disabled"
			}
			if a.LastLoginAt != nil {
				last = a.LastLoginAt.UTC().Format(time.DateTime)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Email, a.Name, a.Role, departmentSlugs(a), state, last)
		}
		return tw.Flush()
	})
}

func cmdAgentUpdate(ctx context.Context, args, environ []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("agent update", flag.ContinueOnError)
	email := fs.String("email", "", "the agent to change, by address")
	name := fs.String("name", "", "new name")
	role := fs.String("role", "", "new role: agent or admin")
	disable := fs.Bool("disable", false, "disable the account (ends its sessions)")
	enable := fs.Bool("enable", false, "enable the account again")
	password := fs.Bool("password", false, "set a new password (read from stdin or --password-file); ends its sessions")
	passwordFile := fs.String("password-file", "", "file holding the new password")
	var depts stringList
	fs.Var(&depts, "department", "the departments the agent works, replacing the current ones (repeat, or comma-separate)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *email == "" {
		return usageError{"agent update: --email is required"}
	}
	if *disable && *enable {
		return usageError{"agent update: --disable and --enable together"}
	}
	var c tickets.AgentChange
	if *name != "" {
		c.Name = name
	}
	if *role != "" {
		r := tickets.Role(*role)
		c.Role = &r
	}
	if *disable || *enable {
		c.Disabled = disable
	}
	if len(depts) > 0 {
		d := []string(depts)
		c.DepartmentSlugs = &d
	}
	if *password || *passwordFile != "" {
		pw, err := readPassword(*passwordFile, stdin)
		if err != nil {
			return err
		}
		c.Password = &pw
	}
	return withStore(ctx, environ, func(s *tickets.Store) error {
		id, err := agentID(ctx, s, *email)
		if err != nil {
			return err
		}
		if err := s.UpdateAgent(ctx, cliActor(), id, c); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "agent %s updated\n", *email)
		return nil
	})
}

func agentID(ctx context.Context, s *tickets.Store, email string) (int64, error) {
	list, err := s.Agents(ctx)
	if err != nil {
		return 0, err
	}
	for _, a := range list {
		if strings.EqualFold(a.Email, strings.TrimSpace(email)) {
			return a.ID, nil
		}
	}
	return 0, fmt.Errorf("no agent %s: %w", email, tickets.ErrNotFound)
}

func cmdCanned(ctx context.Context, args, environ []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"canned: want add, list or remove"}
	}
	switch args[0] {
	case "add":
		fs := flag.NewFlagSet("canned add", flag.ContinueOnError)
		dept := fs.String("department", "", "slug of the department it is for (default: every department)")
		title := fs.String("title", "", "title agents pick it by")
		bodyFile := fs.String("body-file", "", "file holding the text; placeholders {{customer_name}}, {{tracking_id}}, {{link}}")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *title == "" || *bodyFile == "" {
			return usageError{"canned add: --title and --body-file are required"}
		}
		body, err := os.ReadFile(*bodyFile)
		if err != nil {
			return fmt.Errorf("--body-file: %w", err)
		}
		return withStore(ctx, environ, func(s *tickets.Store) error {
			c := tickets.Canned{Title: *title, Body: string(body)}
			if *dept != "" {
				d, err := s.DepartmentBySlug(ctx, *dept)
				if err != nil {
					return err
				}
				c.DepartmentID = d.ID
			}
			id, err := s.SaveCanned(ctx, cliActor(), c)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "canned response %d saved: %s\n", id, c.Title)
			return nil
		})
	case "list":
		if err := parseFlags(flag.NewFlagSet("canned list", flag.ContinueOnError), args[1:]); err != nil {
			return err
		}
		return withStore(ctx, environ, func(s *tickets.Store) error {
			list, err := s.CannedFor(ctx, 0)
			if err != nil {
				return err
			}
			depts, err := s.Departments(ctx)
			if err != nil {
				return err
			}
			slug := map[int64]string{0: "(all)"}
			for _, d := range depts {
				slug[d.ID] = d.Slug
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tDEPARTMENT\tTITLE\tTEXT")
			for _, c := range list {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", c.ID, slug[c.DepartmentID], c.Title, clip(strings.Join(strings.Fields(c.Body), " "), 60))
			}
			return tw.Flush()
		})
	case "remove":
		if len(args) != 2 {
			return usageError{"canned remove: want the ID (see canned list)"}
		}
		id, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil {
			return usageError{fmt.Sprintf("canned remove: %q is not an ID", args[1])}
		}
		return withStore(ctx, environ, func(s *tickets.Store) error {
			if err := s.DeleteCanned(ctx, cliActor(), id); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "canned response %d removed\n", id)
			return nil
		})
	}
	return usageError{fmt.Sprintf("canned %s: want add, list or remove", args[0])}
}
