package users

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
)

// Consent is what a user allowed a client.
type Consent struct {
	UserID    string    `json:"user_id"`
	ClientID  string    `json:"client_id"`
	Scopes    []string  `json:"scopes"`
	GrantedAt time.Time `json:"granted_at"`
}

// ConsentStore stores consents (see package store's Consents).
type ConsentStore interface {
	PutConsent(ctx context.Context, c Consent) error
	Consent(ctx context.Context, userID, clientID string) (Consent, error)
	UserConsents(ctx context.Context, userID string) ([]Consent, error)
	DeleteUserConsents(ctx context.Context, userID string) error
}

// HasConsent reports whether the user already allowed the client every
// one of scopes.
func (s *Service) HasConsent(ctx context.Context, userID, clientID string, scopes []string) (bool, error) {
	c, err := s.consents.Consent(ctx, userID, clientID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, sc := range scopes {
		if !slices.Contains(c.Scopes, sc) {
			return false, nil
		}
	}
	return true, nil
}

// GrantConsent records that the user allowed the client scopes (added to
// what it allowed before).
func (s *Service) GrantConsent(ctx context.Context, userID, clientID string, scopes []string, m Meta) error {
	c, err := s.consents.Consent(ctx, userID, clientID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	all := dedupe(append(slices.Clone(c.Scopes), scopes...))
	err = s.consents.PutConsent(ctx, Consent{UserID: userID, ClientID: clientID, Scopes: all, GrantedAt: s.now().UTC()})
	if err != nil {
		return err
	}
	s.event(ctx, EventConsent, userID, OutcomeSuccess, clientID+": "+strings.Join(scopes, " "), m)
	return nil
}
