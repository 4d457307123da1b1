// Package password owns how OpsConductor identity stores and accepts
// passwords: argon2id hashing in the PHC string format, with a bound on how
// many hashes run at once, and the policy a new password must meet (length,
// characters, a list of common passwords, not the username).
//
// It must never log, print or put into an error a password or a password
// hash, and never compare a hash with anything but crypto/subtle. Errors it
// returns describe the rule or the field that failed, not the input. Callers
// keep the same discipline: a hash is a secret, like the password it came from.
//
// The identity service uses it like this:
//
//	h, err := password.NewHasher(password.DefaultParams, 4)
//	...
//	if err := password.DefaultPolicy.Check(username, pw); err != nil {
//		var pe *password.PolicyError
//		if errors.As(err, &pe) { /* 400 with pe.Rule and pe.Message */ }
//	}
//	encoded, err := h.Hash(ctx, pw)
//	...
//	// At login; for an unknown user call h.VerifyDummy instead, so that
//	// both cases take the same time.
//	ok, needsRehash, err := h.Verify(ctx, pw, user.PasswordHash)
package password

//go:generate sh gen.sh
