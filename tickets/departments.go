package tickets

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
)

var slugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// NormalizeAddress lower-cases an address and drops a "+tag" from its local
// part, so "Support+Urgent@Example.com" names the department at
// "support@example.com". It returns "" for something that is not an address.
func NormalizeAddress(addr string) string {
	addr = strings.ToLower(strings.TrimSpace(addr))
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return ""
	}
	local, domain := addr[:at], addr[at+1:]
	if plus := strings.IndexByte(local, '+'); plus > 0 {
		local = local[:plus]
	}
	return local + "@" + domain
}

// AddDepartment creates a department. Its address is normalized.
func (s *Store) AddDepartment(ctx context.Context, d Department) (Department, error) {
	d.Slug = strings.TrimSpace(d.Slug)
	d.Name = strings.TrimSpace(d.Name)
	if !slugPattern.MatchString(d.Slug) {
		return d, fmt.Errorf("department slug %q: use lower-case letters, digits, '-' or '_': %w", d.Slug, ErrInvalid)
	}
	if d.Name == "" {
		return d, fmt.Errorf("department %q: name is empty: %w", d.Slug, ErrInvalid)
	}
	parsed, err := mail.ParseAddress(d.Address)
	if err != nil || parsed.Name != "" {
		return d, fmt.Errorf("department %q: address %q is not a plain address: %w", d.Slug, d.Address, ErrInvalid)
	}
	if strings.Contains(parsed.Address[:strings.LastIndexByte(parsed.Address, '@')], "+") {
		return d, fmt.Errorf("department %q: address %q must not contain '+' (tags are matched to the plain address): %w", d.Slug, d.Address, ErrInvalid)
	}
	d.Address = NormalizeAddress(parsed.Address)
	if d.Locale == "" {
		d.Locale = LocaleSpanish
	}
	if !ValidLocale(d.Locale) {
		return d, fmt.Errorf("department %q: locale %q: want es or en: %w", d.Slug, d.Locale, ErrInvalid)
	}
	err = s.pool.QueryRow(ctx,
		`INSERT INTO departments (slug, name, address, locale) VALUES ($1, $2, $3, $4) RETURNING id, created_at`,
		d.Slug, d.Name, d.Address, d.Locale).Scan(&d.ID, &d.CreatedAt)
	if isUniqueViolation(err, "") {
		return d, fmt.Errorf("department %q (%s): slug or address is taken: %w", d.Slug, d.Address, ErrConflict)
	}
	if err != nil {
		return d, fmt.Errorf("add department %q: %w", d.Slug, err)
	}
	return d, nil
}

const departmentColumns = `d.id, d.slug, d.name, d.address, d.locale, d.created_at, coalesce(d.auto_resolve_days, 0)`

// departmentDest are the scan destinations of departmentColumns.
func departmentDest(d *Department) []any {
	return []any{&d.ID, &d.Slug, &d.Name, &d.Address, &d.Locale, &d.CreatedAt, &d.AutoResolveDays}
}

func scanDepartment(row pgx.Row) (Department, error) {
	var d Department
	err := row.Scan(departmentDest(&d)...)
	return d, err
}

// Departments lists all departments by name.
func (s *Store) Departments(ctx context.Context) ([]Department, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+departmentColumns+` FROM departments d ORDER BY d.name, d.id`)
	if err != nil {
		return nil, fmt.Errorf("list departments: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Department, error) { return scanDepartment(r) })
	if err != nil {
		return nil, fmt.Errorf("list departments: %w", err)
	}
	return list, nil
}

// DepartmentBySlug returns the department with that slug.
func (s *Store) DepartmentBySlug(ctx context.Context, slug string) (Department, error) {
	d, err := scanDepartment(s.pool.QueryRow(ctx, `SELECT `+departmentColumns+` FROM departments d WHERE d.slug = $1`, slug))
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("department %q: %w", slug, ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("department %q: %w", slug, err)
	}
	return d, nil
}

// EnsureDepartment creates d unless some department exists already, and
// reports whether it did. Two callers racing create it once.
func (s *Store) EnsureDepartment(ctx context.Context, d Department) (bool, error) {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM departments)`).Scan(&exists); err != nil {
		return false, fmt.Errorf("count departments: %w", err)
	}
	if exists {
		return false, nil
	}
	if _, err := s.AddDepartment(ctx, d); err != nil {
		if errors.Is(err, ErrConflict) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}
