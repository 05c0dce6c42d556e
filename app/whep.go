package app

import (
	"context"

	"mediasvc/domain"
)

// whepLocal is WHEP (RFC 9725) for a session held by this instance: a
// viewer session whose one offer is answered with every local candidate
// gathered. On error nothing is left behind.
func (s *Service) whepLocal(ctx context.Context, device domain.DeviceID, owner string, offer string) (domain.Session, string, error) {
	sess, _, err := s.createLocal(ctx, device, domain.RoleViewer, owner, "whep")
	if err != nil {
		return domain.Session{}, "", err
	}
	l, err := s.held(sess.ID)
	if err != nil {
		return domain.Session{}, "", err
	}
	answer, err := s.offerLocal(ctx, l, offer, false)
	if err != nil {
		s.closeHere(context.WithoutCancel(ctx), sess.ID, "offer_failed")
		return domain.Session{}, "", err
	}
	return sess, answer, nil
}
