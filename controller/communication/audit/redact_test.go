package audit

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]any
		want map[string]any
	}{
		{"keys that are not secret are kept",
			map[string]any{"name": "web", "port": json.Number("22"), "enabled": true, "tags": []any{"a"}, "footprint": "x", "keyboard": "us"},
			map[string]any{"name": "web", "port": json.Number("22"), "enabled": true, "tags": []any{"a"}, "footprint": "x", "keyboard": "us"}},
		{"secret keys are redacted whatever their case and separators",
			map[string]any{"password": "p", "New-Password": "p", "client_secret": "s", "API_KEY": "k", "apiKey": "k",
				"refresh_token": "t", "privateKey": "k", "private_key_pem": "k", "Passphrase": "p", "Authorization": "Bearer x",
				"otp": "123456", "pin": "0000", "dsn": "postgres://u:p@h/db", "access_key_id": "AKIA"},
			map[string]any{"password": Redacted, "New-Password": Redacted, "client_secret": Redacted, "API_KEY": Redacted,
				"apiKey": Redacted, "refresh_token": Redacted, "privateKey": Redacted, "private_key_pem": Redacted,
				"Passphrase": Redacted, "Authorization": Redacted, "otp": Redacted, "pin": Redacted, "dsn": Redacted,
				"access_key_id": Redacted}},
		{"a secret key's whole value is redacted, objects and lists too",
			map[string]any{"credentials": map[string]any{"user": "root"}, "tokens": []any{"a", "b"}},
			map[string]any{"credentials": Redacted, "tokens": Redacted}},
		{"nested maps and lists are walked",
			map[string]any{"before": map[string]any{"user": "bob", "password_hash": "$argon2id$"},
				"steps": []any{map[string]any{"name": "s", "env": map[string]any{"DB_PASSWORD": "x", "PATH": "/bin"}}}},
			map[string]any{"before": map[string]any{"user": "bob", "password_hash": Redacted},
				"steps": []any{map[string]any{"name": "s", "env": map[string]any{"DB_PASSWORD": Redacted, "PATH": "/bin"}}}}},
		{"a private key under an innocent key is redacted",
			map[string]any{"data": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----", "public": "ssh-ed25519 AAAA"},
			map[string]any{"data": Redacted, "public": "ssh-ed25519 AAAA"}},
		{"nil and empty stay as they are", map[string]any{"a": nil, "b": map[string]any{}, "c": []any{}},
			map[string]any{"a": nil, "b": map[string]any{}, "c": []any{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := json.Marshal(tc.in)
			got := Redact(tc.in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v\nwant %v", got, tc.want)
			}
			if after, _ := json.Marshal(tc.in); string(after) != string(before) {
				t.Fatalf("Redact changed its input: %s", after)
			}
		})
	}
}
