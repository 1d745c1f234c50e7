package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"inkorg/internal/settings"
	"inkorg/internal/store"
)

// queryer is what *pgxpool.Pool and pgx.Tx have in common.
type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// dateParam is a DATE parameter: NULL for the zero Date.
func dateParam(d settings.Date) any {
	if d.IsZero() {
		return nil
	}
	return d.String()
}

// dateOf reads a nullable DATE column.
func dateOf(t *time.Time) settings.Date {
	if t == nil {
		return settings.Date{}
	}
	return settings.DateOf(*t)
}

// textParam is a nullable TEXT parameter from an optional setting.
func textParam[T ~string](p *T) *string {
	if p == nil {
		return nil
	}
	v := string(*p)
	return &v
}

func fromText[T ~string](p *string) *T {
	if p == nil {
		return nil
	}
	v := T(*p)
	return &v
}

// Config implements store.Store.
func (s *Store) Config(ctx context.Context) (settings.Config, error) {
	var c settings.Config
	err := s.snapshot(ctx, func(tx pgx.Tx) error {
		var err error
		if c.System, err = s.system(ctx, tx); err != nil {
			return err
		}
		if c.Users, err = s.users(ctx, tx, ""); err != nil {
			return err
		}
		if c.Accounts, err = s.accounts(ctx, tx, ""); err != nil {
			return err
		}
		c.Webshop, err = s.webshop(ctx, tx)
		return err
	})
	if err != nil {
		return settings.Config{}, fmt.Errorf("read settings: %w", err)
	}
	return c, nil
}

// System implements store.Store.
func (s *Store) System(ctx context.Context) (settings.System, error) { return s.system(ctx, s.pool) }

func (s *Store) system(ctx context.Context, q queryer) (settings.System, error) {
	var sys settings.System
	var pw, secret, key []byte
	var expires *time.Time
	err := q.QueryRow(ctx, `SELECT email_method, server_address, port, use_ssl, username, password, client_id, tenant_id, auth_flow, client_secret,
		client_secret_expires, client_certificate, client_key, send_transport FROM system_settings WHERE id = 1`).
		Scan(&sys.EmailMethod, &sys.ServerAddress, &sys.Port, &sys.UseSSL, &sys.Username, &pw, &sys.ClientID, &sys.TenantID, &sys.AuthFlow, &secret,
			&expires, &sys.ClientCertificate, &key, &sys.SendTransport)
	if errors.Is(err, pgx.ErrNoRows) {
		return settings.System{}, nil
	}
	if err != nil {
		return sys, fmt.Errorf("read system settings: %w", err)
	}
	if sys.Password, err = store.Unseal(s.sealer, pw, store.SystemPasswordField); err != nil {
		return sys, err
	}
	if sys.ClientSecret, err = store.Unseal(s.sealer, secret, store.SystemClientSecretField); err != nil {
		return sys, err
	}
	if sys.ClientKey, err = store.Unseal(s.sealer, key, store.SystemClientKeyField); err != nil {
		return sys, err
	}
	sys.ClientSecretExpires = dateOf(expires)
	return sys, nil
}

// PutSystem implements store.Store.
func (s *Store) PutSystem(ctx context.Context, sys settings.System, actor string) error {
	pw, err := store.Seal(s.sealer, sys.Password, store.SystemPasswordField)
	if err != nil {
		return err
	}
	secret, err := store.Seal(s.sealer, sys.ClientSecret, store.SystemClientSecretField)
	if err != nil {
		return err
	}
	key, err := store.Seal(s.sealer, sys.ClientKey, store.SystemClientKeyField)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		old, err := s.system(ctx, tx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO system_settings (id, email_method, server_address, port, use_ssl, username, password, client_id, tenant_id, auth_flow, client_secret, client_secret_expires,
				client_certificate, client_key, send_transport, updated_at)
			VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
			ON CONFLICT (id) DO UPDATE SET email_method = excluded.email_method, server_address = excluded.server_address, port = excluded.port,
				use_ssl = excluded.use_ssl, username = excluded.username, password = excluded.password, client_id = excluded.client_id,
				tenant_id = excluded.tenant_id, auth_flow = excluded.auth_flow, client_secret = excluded.client_secret,
				client_secret_expires = excluded.client_secret_expires, client_certificate = excluded.client_certificate,
				client_key = excluded.client_key, send_transport = excluded.send_transport, updated_at = excluded.updated_at`,
			string(sys.EmailMethod), sys.ServerAddress, sys.Port, sys.UseSSL, sys.Username, pw, sys.ClientID, sys.TenantID, string(sys.AuthFlow), secret,
			dateParam(sys.ClientSecretExpires), sys.ClientCertificate, key, string(sys.SendTransport), s.now()); err != nil {
			return fmt.Errorf("write system settings: %w", err)
		}
		return s.audit(ctx, tx, actor, "system", store.SystemChanges(old, sys))
	})
}

// User implements store.Store.
func (s *Store) User(ctx context.Context, name string) (settings.User, error) {
	us, err := s.users(ctx, s.pool, name)
	if err != nil {
		return settings.User{}, err
	}
	if len(us) == 0 {
		return settings.User{}, fmt.Errorf("user %s: %w", name, store.ErrNotFound)
	}
	return us[0], nil
}

// Users implements store.Store.
func (s *Store) Users(ctx context.Context) ([]settings.User, error) { return s.users(ctx, s.pool, "") }

// users reads all users, or the one named (case-insensitively), ordered by name ignoring case.
func (s *Store) users(ctx context.Context, q queryer, name string) ([]settings.User, error) {
	query := `SELECT name, email_method, email_address, exchange_username, exchange_password, exchange_password_set, copy_to_self, signature FROM users`
	var args []any
	if name != "" {
		query += ` WHERE lower(name) = lower($1)`
		args = append(args, strings.TrimSpace(name))
	}
	rows, err := q.Query(ctx, query+` ORDER BY lower(name) COLLATE "C", name COLLATE "C"`, args...)
	if err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	defer rows.Close()
	var out []settings.User
	for rows.Next() {
		var u settings.User
		var method, addr, user, copy, sig *string
		var pw []byte
		var pwSet bool
		if err := rows.Scan(&u.Name, &method, &addr, &user, &pw, &pwSet, &copy, &sig); err != nil {
			return nil, fmt.Errorf("read users: %w", err)
		}
		u.EmailMethod, u.EmailAddress, u.ExchangeUsername = fromText[settings.EmailMethod](method), addr, user
		u.CopyToSelf, u.Signature = fromText[settings.CopyToSelf](copy), sig
		if pwSet {
			sec, err := store.Unseal(s.sealer, pw, store.UserPasswordField(u.Name))
			if err != nil {
				return nil, err
			}
			u.ExchangePassword = &sec
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	return out, nil
}

// PutUser implements store.Store.
func (s *Store) PutUser(ctx context.Context, u settings.User, actor string) error {
	u.Name = strings.TrimSpace(u.Name)
	if u.Name == "" {
		return errors.New("write user: no name")
	}
	var pw []byte
	if u.ExchangePassword != nil {
		var err error
		if pw, err = store.Seal(s.sealer, *u.ExchangePassword, store.UserPasswordField(u.Name)); err != nil {
			return err
		}
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		var old *settings.User
		if us, err := s.users(ctx, tx, u.Name); err != nil {
			return err
		} else if len(us) == 1 {
			old = &us[0]
			u.Name = old.Name // keep the name as first written
		}
		if _, err := tx.Exec(ctx, `INSERT INTO users (name, email_method, email_address, exchange_username, exchange_password, exchange_password_set, copy_to_self, signature, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT ((lower(name))) DO UPDATE SET email_method = excluded.email_method, email_address = excluded.email_address,
				exchange_username = excluded.exchange_username, exchange_password = excluded.exchange_password,
				exchange_password_set = excluded.exchange_password_set, copy_to_self = excluded.copy_to_self,
				signature = excluded.signature, updated_at = excluded.updated_at`,
			u.Name, textParam(u.EmailMethod), u.EmailAddress, u.ExchangeUsername, pw, u.ExchangePassword != nil,
			textParam(u.CopyToSelf), u.Signature, s.now()); err != nil {
			return fmt.Errorf("write user %s: %w", u.Name, err)
		}
		return s.audit(ctx, tx, actor, "users["+u.Name+"]", store.UserChanges(old, u))
	})
}

// DeleteUser implements store.Store.
func (s *Store) DeleteUser(ctx context.Context, name, actor string) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		us, err := s.users(ctx, tx, name)
		if err != nil {
			return err
		}
		if len(us) == 0 {
			return fmt.Errorf("user %s: %w", name, store.ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM users WHERE name = $1`, us[0].Name); err != nil {
			return fmt.Errorf("delete user %s: %w", name, err)
		}
		return s.audit(ctx, tx, actor, "users["+us[0].Name+"]", []store.Change{{Field: "(user)", Old: "has e-mail settings", New: "removed"}})
	})
}

// IncomingAccounts implements store.Store.
func (s *Store) IncomingAccounts(ctx context.Context) ([]settings.IncomingAccount, error) {
	return s.accounts(ctx, s.pool, "")
}

// IncomingAccount implements store.Store.
func (s *Store) IncomingAccount(ctx context.Context, address string) (settings.IncomingAccount, error) {
	as, err := s.accounts(ctx, s.pool, address)
	if err != nil {
		return settings.IncomingAccount{}, err
	}
	if len(as) == 0 {
		return settings.IncomingAccount{}, fmt.Errorf("incoming account %s: %w", address, store.ErrNotFound)
	}
	return as[0], nil
}

const accountColumns = `id, address, type, exchange_username, exchange_password, available_to, client_id, tenant_id, auth_flow,
	client_secret, client_secret_set, client_secret_expires, client_secret_expires_set, folder, processed_folder, failed_folder, leave_in_place,
	poll_seconds`

// accounts reads all accounts, or the one with the address (case-insensitively), in the order added.
func (s *Store) accounts(ctx context.Context, q queryer, address string) ([]settings.IncomingAccount, error) {
	query := `SELECT ` + accountColumns + ` FROM incoming_accounts`
	var args []any
	if address != "" {
		query += ` WHERE lower(address) = lower($1)`
		args = append(args, strings.TrimSpace(address))
	}
	return s.scanAccounts(ctx, q, query+` ORDER BY id`, args...)
}

func (s *Store) scanAccounts(ctx context.Context, q queryer, query string, args ...any) ([]settings.IncomingAccount, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read incoming accounts: %w", err)
	}
	defer rows.Close()
	var out []settings.IncomingAccount
	for rows.Next() {
		var a settings.IncomingAccount
		var typ string
		var pw, secret []byte
		var flow *string
		var expires *time.Time
		var secretSet, expiresSet bool
		var pollSeconds int64
		if err := rows.Scan(&a.ID, &a.Address, &typ, &a.ExchangeUsername, &pw, &a.AvailableTo, &a.ClientID, &a.TenantID, &flow,
			&secret, &secretSet, &expires, &expiresSet, &a.Folder, &a.ProcessedFolder, &a.FailedFolder, &a.LeaveInPlace, &pollSeconds); err != nil {
			return nil, fmt.Errorf("read incoming accounts: %w", err)
		}
		a.Type = settings.IncomingType(typ)
		a.PollInterval = time.Duration(pollSeconds) * time.Second
		a.AvailableTo = nonNil(a.AvailableTo)
		if a.ExchangePassword, err = store.Unseal(s.sealer, pw, store.AccountPasswordField(a.ID)); err != nil {
			return nil, err
		}
		a.AuthFlow = fromText[settings.AuthFlow](flow)
		if secretSet {
			sec, err := store.Unseal(s.sealer, secret, store.AccountClientSecretField(a.ID))
			if err != nil {
				return nil, err
			}
			a.ClientSecret = &sec
		}
		if expiresSet {
			d := dateOf(expires)
			a.ClientSecretExpires = &d
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read incoming accounts: %w", err)
	}
	return out, nil
}

// AddIncomingAccount implements store.Store.
func (s *Store) AddIncomingAccount(ctx context.Context, a settings.IncomingAccount, actor string) (settings.IncomingAccount, error) {
	a.Address = strings.TrimSpace(a.Address)
	err := s.write(ctx, func(tx pgx.Tx) error {
		if as, err := s.accounts(ctx, tx, a.Address); err != nil {
			return err
		} else if len(as) > 0 {
			return fmt.Errorf("incoming account %s: %w", a.Address, store.ErrExists)
		}
		now := s.now()
		if err := tx.QueryRow(ctx, `INSERT INTO incoming_accounts (address, type, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING id`,
			a.Address, string(a.Type), now).Scan(&a.ID); err != nil {
			return fmt.Errorf("add incoming account %s: %w", a.Address, err)
		}
		if err := s.writeAccount(ctx, tx, a); err != nil {
			return err
		}
		return s.audit(ctx, tx, actor, "incoming["+a.Address+"]", store.AccountChanges(nil, &a))
	})
	return a, err
}

// PutIncomingAccount implements store.Store.
func (s *Store) PutIncomingAccount(ctx context.Context, a settings.IncomingAccount, actor string) error {
	a.Address = strings.TrimSpace(a.Address)
	return s.write(ctx, func(tx pgx.Tx) error {
		old, err := s.accountByID(ctx, tx, a.ID)
		if err != nil {
			return err
		}
		if !strings.EqualFold(old.Address, a.Address) {
			if as, err := s.accounts(ctx, tx, a.Address); err != nil {
				return err
			} else if len(as) > 0 {
				return fmt.Errorf("incoming account %s: %w", a.Address, store.ErrExists)
			}
		}
		if err := s.writeAccount(ctx, tx, a); err != nil {
			return err
		}
		return s.audit(ctx, tx, actor, "incoming["+a.Address+"]", store.AccountChanges(&old, &a))
	})
}

func (s *Store) accountByID(ctx context.Context, tx pgx.Tx, id int64) (settings.IncomingAccount, error) {
	as, err := s.scanAccounts(ctx, tx, `SELECT `+accountColumns+` FROM incoming_accounts WHERE id = $1`, id)
	if err != nil {
		return settings.IncomingAccount{}, err
	}
	if len(as) == 0 {
		return settings.IncomingAccount{}, fmt.Errorf("incoming account %d: %w", id, store.ErrNotFound)
	}
	return as[0], nil
}

// writeAccount writes every field of an existing row.
func (s *Store) writeAccount(ctx context.Context, tx pgx.Tx, a settings.IncomingAccount) error {
	pw, err := store.Seal(s.sealer, a.ExchangePassword, store.AccountPasswordField(a.ID))
	if err != nil {
		return err
	}
	var secret []byte
	if a.ClientSecret != nil {
		if secret, err = store.Seal(s.sealer, *a.ClientSecret, store.AccountClientSecretField(a.ID)); err != nil {
			return err
		}
	}
	var expires any
	if a.ClientSecretExpires != nil {
		expires = dateParam(*a.ClientSecretExpires)
	}
	tag, err := tx.Exec(ctx, `UPDATE incoming_accounts SET address = $1, type = $2, exchange_username = $3, exchange_password = $4, available_to = $5,
		client_id = $6, tenant_id = $7, auth_flow = $8, client_secret = $9, client_secret_set = $10, client_secret_expires = $11,
		client_secret_expires_set = $12, folder = $13, processed_folder = $14, failed_folder = $15, leave_in_place = $16, poll_seconds = $17,
		updated_at = $18 WHERE id = $19`,
		a.Address, string(a.Type), a.ExchangeUsername, pw, nonNil(a.AvailableTo), a.ClientID, a.TenantID, textParam(a.AuthFlow),
		secret, a.ClientSecret != nil, expires, a.ClientSecretExpires != nil, a.Folder, a.ProcessedFolder, a.FailedFolder, a.LeaveInPlace,
		int64(a.PollInterval/time.Second), s.now(), a.ID)
	if err != nil {
		return fmt.Errorf("write incoming account %s: %w", a.Address, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("write incoming account %s: %w", a.Address, store.ErrNotFound)
	}
	return nil
}

// RemoveIncomingAccount implements store.Store.
func (s *Store) RemoveIncomingAccount(ctx context.Context, address, actor string) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		as, err := s.accounts(ctx, tx, address)
		if err != nil {
			return err
		}
		if len(as) == 0 {
			return fmt.Errorf("incoming account %s: %w", address, store.ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM incoming_accounts WHERE id = $1`, as[0].ID); err != nil {
			return fmt.Errorf("remove incoming account %s: %w", address, err)
		}
		return s.audit(ctx, tx, actor, "incoming["+as[0].Address+"]", store.AccountChanges(&as[0], nil))
	})
}

// Webshop implements store.Store.
func (s *Store) Webshop(ctx context.Context) (settings.Webshop, error) { return s.webshop(ctx, s.pool) }

func (s *Store) webshop(ctx context.Context, q queryer) (settings.Webshop, error) {
	var method string
	err := q.QueryRow(ctx, `SELECT email_method FROM webshop_settings WHERE id = 1`).Scan(&method)
	if errors.Is(err, pgx.ErrNoRows) {
		return settings.Webshop{}, nil
	}
	if err != nil {
		return settings.Webshop{}, fmt.Errorf("read webshop settings: %w", err)
	}
	return settings.Webshop{EmailMethod: settings.WebshopMethod(method)}, nil
}

// PutWebshop implements store.Store.
func (s *Store) PutWebshop(ctx context.Context, w settings.Webshop, actor string) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		old, err := s.webshop(ctx, tx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO webshop_settings (id, email_method, updated_at) VALUES (1, $1, $2)
			ON CONFLICT (id) DO UPDATE SET email_method = excluded.email_method, updated_at = excluded.updated_at`, string(w.EmailMethod), s.now()); err != nil {
			return fmt.Errorf("write webshop settings: %w", err)
		}
		return s.audit(ctx, tx, actor, "webshop", store.WebshopChanges(old, w))
	})
}
