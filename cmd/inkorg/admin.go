package main

import (
	"errors"
	"fmt"
	"time"

	"inkorg/internal/store"
	"inkorg/internal/web"
)

const adminUsage = `usage: inkorg admin create|list|remove [ARGS]

The operators who sign in to the admin web UI (served by "inkorg serve" on --addr). Passwords are
stored as argon2id hashes only. An admin may do everything; a user may only see and change the e-mail
settings of one ERP user (--user).
  admin create NAME [--role admin|user] [--user ERPNAME] [--db …]   the password is read from standard input
  admin list [--json] [--db …]
  admin remove NAME [--db …]                                         signs the operator out everywhere

Example:
  inkorg admin create alice < alice-password.txt
  inkorg admin create anna --role user --user ANNA < anna-password.txt

All commands take --db (default $INKORG_DB, else ./inkorg.db).
Exit codes: 0 done, 1 refused, 2 usage error.
`

func cmdAdmin(e *env, args []string) error {
	return dispatchActions(e, "admin", adminUsage, args,
		action{"create", adminCreate}, action{"list", adminList}, action{"remove", adminRemove})
}

func adminCreate(e *env, args []string) error {
	f := newFlags(e, "admin create", adminUsage)
	db := dbFlag(f)
	role := f.String("role", "admin", "admin (everything) or user (only the e-mail settings of --user)")
	user := f.String("user", "", "with --role user: the ERP user whose e-mail settings the operator may change")
	name, err := f.parseNamed(args, "operator NAME")
	if err != nil {
		return err
	}
	if err := checkTokenName("operator name", name); err != nil {
		return f.usageErr("%v", err)
	}
	r := store.Role(*role)
	switch {
	case !r.Valid():
		return f.usageErr("--role %q: use admin or user", *role)
	case r == store.RoleUser && *user == "":
		return f.usageErr("--role user needs --user ERPNAME: the ERP user whose e-mail settings the operator may change")
	case r == store.RoleAdmin && *user != "":
		return f.usageErr("--user goes with --role user (an admin may change every user's settings)")
	}
	pw, err := readSecret(e, "password (standard input)", "-")
	if err != nil {
		return err
	}
	hash, err := web.HashPassword(pw.Reveal())
	if err != nil {
		return f.usageErr("%v", err)
	}
	st, err := openStore(e, *db, false)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.CreateOperator(e.ctx, store.Operator{Name: name, Role: r, User: *user}, hash); errors.Is(err, store.ErrExists) {
		fmt.Fprintf(e.stderr, "Not created: an operator named %s already exists. Remove it first: inkorg admin remove %s\n", name, name)
		return problemsError{}
	} else if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Created the operator %s (%s). Sign in at http://ADDR/login of \"inkorg serve\".\n", name, r)
	return nil
}

func adminList(e *env, args []string) error {
	st, asJSON, err := openToShow(e, "admin list", adminUsage, args)
	if err != nil {
		return err
	}
	defer st.Close()
	ops, err := st.Operators(e.ctx)
	if err != nil {
		return err
	}
	if ops == nil {
		ops = []store.Operator{}
	}
	if asJSON {
		return printJSON(e, ops)
	}
	if len(ops) == 0 {
		fmt.Fprintln(e.stdout, "No operators. Make one with \"inkorg admin create NAME\" (password on standard input).")
		return nil
	}
	t := newTable(e, "Operators")
	fmt.Fprintf(t.w, "  Name\tRole\tUser\tCreated\n")
	for _, o := range ops {
		fmt.Fprintf(t.w, "  %s\t%s\t%s\t%s\n", o.Name, o.Role, o.User, o.CreatedAt.UTC().Format(time.RFC3339))
	}
	return t.flush()
}

func adminRemove(e *env, args []string) error {
	st, name, err := openNamed(e, "admin remove", adminUsage, "operator NAME", args)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.RemoveOperator(e.ctx, name); errors.Is(err, store.ErrNotFound) {
		fmt.Fprintf(e.stderr, "No operator named %s (see: inkorg admin list).\n", name)
		return problemsError{}
	} else if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Removed the operator %s and ended their sessions.\n", name)
	return nil
}
