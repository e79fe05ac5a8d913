package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/verdictpdp/verdict/users"
)

// UserAdmin is what /v1/admin/users needs of the users service.
type UserAdmin interface {
	Add(ctx context.Context, nu users.NewUser, m users.Meta) (users.User, error)
	List(ctx context.Context) ([]users.User, error)
	Find(ctx context.Context, ref string) (users.User, error)
	Update(ctx context.Context, id string, up users.Update, m users.Meta) (users.User, error)
	SetPassword(ctx context.Context, id, password string, m users.Meta) error
	Unlock(ctx context.Context, id string, m users.Meta) error
	RemoveMFA(ctx context.Context, id string, m users.Meta) error
	Sessions(ctx context.Context, userID string) ([]users.Session, error)
	EndSessions(ctx context.Context, userID, except string) (int, error)
	Export(ctx context.Context, id string, m users.Meta) (users.Export, error)
	Erase(ctx context.Context, id string, pseudonymKey []byte, m users.Meta) (string, error)
}

var _ UserAdmin = (*users.Service)(nil)

// WithUserAdmin serves /v1/admin/users (scope verdict:admin); key is the
// deployment's pseudonym key for erasure (users.Pseudonym).
func WithUserAdmin(u UserAdmin, key []byte) Option {
	return func(s *Server) { s.userAdmin, s.pseudonymKey = u, key }
}

// userErr maps the users service's errors to responses.
func userErr(err error) error {
	switch {
	case errors.Is(err, users.ErrNotFound):
		return newError(fiber.StatusNotFound, CodeNotFound, "no such user")
	case errors.Is(err, users.ErrExists):
		return newError(fiber.StatusConflict, CodeConflict, "a user with this email exists")
	case errors.Is(err, users.ErrInvalid), errors.Is(err, users.ErrWeakPassword):
		return newError(fiber.StatusBadRequest, CodeInvalidInput, err.Error())
	}
	return err
}

func (s *Server) usersReady() error {
	if s.userAdmin == nil {
		return newError(fiber.StatusNotFound, CodeNotFound, "this server has no users (set tokens.issuer)")
	}
	return nil
}

// adminJSON decodes a JSON object body strictly into v.
func (s *Server) adminJSON(c *fiber.Ctx, v any) error {
	if !isJSON(c.Get(fiber.HeaderContentType)) {
		return newError(fiber.StatusUnsupportedMediaType, CodeUnsupportedMedia, "Content-Type must be application/json")
	}
	doc, err := decodeObject(c.Body(), s.cfg.MaxDepth)
	if err != nil {
		return err
	}
	raw, _ := json.Marshal(doc)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return newError(fiber.StatusBadRequest, CodeInvalidInput, "fields are unknown or have the wrong types: "+jsonMsg(err))
	}
	return nil
}

// addUser is POST /v1/admin/users: {email, name, password, roles, groups}
// → 201 the user (without secrets).
func (s *Server) addUser(c *fiber.Ctx) error {
	if err := s.usersReady(); err != nil {
		return err
	}
	var in struct {
		Email    string   `json:"email"`
		Name     string   `json:"name"`
		Password string   `json:"password"`
		Roles    []string `json:"roles"`
		Groups   []string `json:"groups"`
	}
	if err := s.adminJSON(c, &in); err != nil {
		return err
	}
	u, err := s.userAdmin.Add(c.UserContext(), users.NewUser{Email: in.Email, Name: in.Name, Password: in.Password, Roles: in.Roles, Groups: in.Groups}, s.meta(c))
	if err != nil {
		return userErr(err)
	}
	s.log.Info("user added", "audit", true, "action", "user.add", "request_id", requestID(c), "user_id", u.ID, "by", callerID(c))
	return c.Status(fiber.StatusCreated).JSON(u.Public())
}

func (s *Server) listUsers(c *fiber.Ctx) error {
	if err := s.usersReady(); err != nil {
		return err
	}
	list, err := s.userAdmin.List(c.UserContext())
	if err != nil {
		return err
	}
	out := make([]users.Public, 0, len(list))
	for _, u := range list {
		out = append(out, u.Public())
	}
	return c.JSON(fiber.Map{"users": out})
}

// userParam is the user the :id parameter names (an id, or an email).
func (s *Server) userParam(c *fiber.Ctx) (users.User, error) {
	if err := s.usersReady(); err != nil {
		return users.User{}, err
	}
	u, err := s.userAdmin.Find(c.UserContext(), utils.CopyString(c.Params("id")))
	return u, userErr(err)
}

func (s *Server) getUser(c *fiber.Ctx) error {
	u, err := s.userParam(c)
	if err != nil {
		return err
	}
	return c.JSON(u.Public())
}

// updateUser is PATCH /v1/admin/users/:id: any of name, email, roles,
// groups, status ("active" or "disabled"). A change of email, roles,
// groups or status ends the user's sessions and tokens.
func (s *Server) updateUser(c *fiber.Ctx) error {
	u, err := s.userParam(c)
	if err != nil {
		return err
	}
	var in struct {
		Name   *string   `json:"name"`
		Email  *string   `json:"email"`
		Roles  *[]string `json:"roles"`
		Groups *[]string `json:"groups"`
		Status *string   `json:"status"`
	}
	if err := s.adminJSON(c, &in); err != nil {
		return err
	}
	u, err = s.userAdmin.Update(c.UserContext(), u.ID, users.Update{Name: in.Name, Email: in.Email, Roles: in.Roles, Groups: in.Groups, Status: in.Status}, s.meta(c))
	if err != nil {
		return userErr(err)
	}
	s.log.Info("user changed", "audit", true, "action", "user.update", "request_id", requestID(c), "user_id", u.ID, "by", callerID(c))
	return c.JSON(u.Public())
}

// setUserPassword is POST /v1/admin/users/:id/password: {password}.
func (s *Server) setUserPassword(c *fiber.Ctx) error {
	u, err := s.userParam(c)
	if err != nil {
		return err
	}
	var in struct {
		Password string `json:"password"`
	}
	if err := s.adminJSON(c, &in); err != nil {
		return err
	}
	if err := s.userAdmin.SetPassword(c.UserContext(), u.ID, in.Password, s.meta(c)); err != nil {
		return userErr(err)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) unlockUser(c *fiber.Ctx) error {
	u, err := s.userParam(c)
	if err != nil {
		return err
	}
	if err := s.userAdmin.Unlock(c.UserContext(), u.ID, s.meta(c)); err != nil {
		return userErr(err)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) removeUserMFA(c *fiber.Ctx) error {
	u, err := s.userParam(c)
	if err != nil {
		return err
	}
	if err := s.userAdmin.RemoveMFA(c.UserContext(), u.ID, s.meta(c)); err != nil {
		return userErr(err)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) userSessions(c *fiber.Ctx) error {
	u, err := s.userParam(c)
	if err != nil {
		return err
	}
	list, err := s.userAdmin.Sessions(c.UserContext(), u.ID)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"sessions": list})
}

// endUserSessions is DELETE /v1/admin/users/:id/sessions: every session
// and refresh token of the user ends.
func (s *Server) endUserSessions(c *fiber.Ctx) error {
	u, err := s.userParam(c)
	if err != nil {
		return err
	}
	n, err := s.userAdmin.EndSessions(c.UserContext(), u.ID, "")
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"ended": n})
}

// exportUser is GET /v1/admin/users/:id/export: everything stored about
// the person, as one JSON document.
func (s *Server) exportUser(c *fiber.Ctx) error {
	u, err := s.userParam(c)
	if err != nil {
		return err
	}
	ex, err := s.userAdmin.Export(c.UserContext(), u.ID, s.meta(c))
	if err != nil {
		return userErr(err)
	}
	s.log.Info("user exported", "audit", true, "action", "user.export", "request_id", requestID(c), "user_id", u.ID, "by", callerID(c))
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="verdict-user-`+u.ID+`.json"`)
	return c.JSON(ex)
}

// eraseUser is DELETE /v1/admin/users/:id: the person is erased (tokens
// and sessions revoked, record deleted, audit events pseudonymised).
func (s *Server) eraseUser(c *fiber.Ctx) error {
	u, err := s.userParam(c)
	if err != nil {
		return err
	}
	pseudo, err := s.userAdmin.Erase(c.UserContext(), u.ID, s.pseudonymKey, s.meta(c))
	if err != nil {
		return userErr(err)
	}
	s.log.Info("user erased", "audit", true, "action", "user.erase", "request_id", requestID(c), "pseudonym", pseudo, "by", callerID(c))
	return c.JSON(fiber.Map{"erased": true, "pseudonym": pseudo})
}
