package domain

import (
	"errors"
	"testing"
	"time"
)

func TestPrincipalRules(t *testing.T) {
	lab := Principal{Subject: "k", Grants: []Grant{
		{Devices: []string{"lab-*"}, Roles: []GrantRole{GrantViewer}},
		{Devices: []string{"lab-7"}, Roles: []GrantRole{GrantController}},
	}}
	admin := Principal{Subject: "a", Grants: []Grant{{Devices: []string{"farm-?"}, Roles: []GrantRole{GrantAdmin}}}}
	tests := []struct {
		p      Principal
		device DeviceID
		role   Role
		want   error
	}{
		{lab, "lab-1", RoleViewer, nil},
		{lab, "lab-1", RoleController, ErrForbidden},
		{lab, "lab-7", RoleController, nil},
		{lab, "office", RoleViewer, ErrDeviceNotFound},
		{admin, "farm-1", RoleController, nil},
		{admin, "farm-10", RoleViewer, ErrDeviceNotFound},
		{OpenPrincipal("ip:1"), "anything", RoleController, nil},
		{Principal{}, "lab-1", RoleViewer, ErrDeviceNotFound},
	}
	for _, tt := range tests {
		err := tt.p.CanOpen(tt.device, tt.role)
		if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("%s CanOpen(%s, %s) = %v, want %v", tt.p.Subject, tt.device, tt.role, err, tt.want)
		}
	}
	if !lab.CanSee("lab-2") || lab.CanSee("lab") || lab.CanOperate() || !admin.CanOperate() {
		t.Error("CanSee/CanOperate")
	}
	own := Session{Owner: "k", DeviceID: "office"}
	other := Session{Owner: "x", DeviceID: "farm-2"}
	if lab.CanActOn(own) != nil || !errors.Is(lab.CanActOn(other), ErrSessionNotFound) || admin.CanActOn(other) != nil {
		t.Error("CanActOn")
	}
	now := time.Now()
	if (Principal{}).Expired(now) || !(Principal{Expires: now}).Expired(now) || (Principal{Expires: now.Add(time.Second)}).Expired(now) {
		t.Error("Expired")
	}
}

func TestValidateGrant(t *testing.T) {
	for _, g := range []Grant{
		{},
		{Devices: []string{"a"}},
		{Devices: []string{""}, Roles: []GrantRole{GrantViewer}},
		{Devices: []string{"a["}, Roles: []GrantRole{GrantViewer}},
		{Devices: []string{"a"}, Roles: []GrantRole{"root"}},
	} {
		if err := ValidateGrant(g); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("ValidateGrant(%+v) = %v", g, err)
		}
	}
	if err := ValidateGrant(Grant{Devices: []string{"*"}, Roles: []GrantRole{GrantAdmin}}); err != nil {
		t.Error(err)
	}
	for _, e := range []error{ErrTokenExpired, ErrTokenAlgorithm, ErrKeyExpired} {
		if !errors.Is(e, ErrUnauthorized) {
			t.Errorf("%v is not ErrUnauthorized", e)
		}
	}
}
