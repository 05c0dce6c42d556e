package app

import (
	"time"

	"mediasvc/domain"
)

// Tunables are the settings of Config a configuration reload may change
// while the service runs.
type Tunables struct {
	// Quota bounds the sessions created from now on.
	Quota domain.Quota
	// ICE bounds what the peers of sessions offering from now on may send.
	ICE domain.ICELimits
	// InputRate and InputBurst are the input budget of sessions created
	// from now on.
	InputRate  float64
	InputBurst int
	// Bitrate is the policy every running capture follows from its next
	// adjustment on.
	Bitrate domain.BitratePolicy
	// QualityInterval is the quality sampling period from the next sample
	// on.
	QualityInterval time.Duration
}

// tunables returns the settings in force.
func (s *Service) tunables() *Tunables { return s.tun.Load() }

// Quota returns the session quota in force (the last Reconfigure's).
func (s *Service) Quota() domain.Quota { return s.tunables().Quota }

// Reconfigure applies t from now on. Sessions in progress keep the ICE
// limits and input budget they started with, and count against the new
// quota as they are; a zero field takes the default New gives it.
func (s *Service) Reconfigure(t Tunables) {
	if t.ICE.MaxCandidates <= 0 {
		t.ICE = domain.DefaultICELimits
	}
	if t.InputRate <= 0 {
		t.InputRate, t.InputBurst = 30, 60
	}
	if t.QualityInterval <= 0 {
		t.QualityInterval = 5 * time.Second
	}
	old := s.tun.Swap(&t)
	s.hub.bitrate.Store(&t.Bitrate)
	if old == nil || old.QualityInterval != t.QualityInterval {
		// Replace a reset Run has not taken yet with this one.
		select {
		case <-s.qualityReset:
		default:
		}
		select {
		case s.qualityReset <- t.QualityInterval:
		default:
		}
	}
}
