package source

import "fmt"

// Helpers only the tests need.

// Validate checks source files against limits; see ValidateSource.
func Validate(files Files, limits Limits) error {
	return ValidateSource("", files, limits)
}

// ValidateProgramID checks that id has the form NewProgramID produces, so it
// is safe to use as a folder or container name.
func ValidateProgramID(id string) error {
	bad := &ValidationError{Field: "program_id", Reason: fmt.Sprintf("%s is not of the form <user_id>-build-<24 hex>-<8 hex>", quoteShort(id))}
	for _, hexLen := range []int{buildIDHexLen, legacyBuildIDHexLen} {
		tail := 1 + len(buildIDPrefix) + hexLen + 1 + programIDRandLen // "-build-…-…"
		if len(id) <= tail || len(id) > MaxUserIDLen+tail {
			continue
		}
		user, rest := id[:len(id)-tail], id[len(id)-tail:]
		if rest[0] == '-' && ValidateBuildID(rest[1:1+len(buildIDPrefix)+hexLen]) == nil &&
			rest[len(rest)-programIDRandLen-1] == '-' && isLowerHex(rest[len(rest)-programIDRandLen:]) &&
			ValidateUserID(user) == nil {
			return nil
		}
	}
	return bad
}
