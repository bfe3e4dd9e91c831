// Package source validates what a user sends to the Host (a user id, a
// Dockerfile and source files), derives the identities the Host uses for it
// (build id, program id), and stores a source tree on disk atomically.
//
// Nothing a user sends decides a path on its own: user ids are checked
// against a strict alphabet, every file path is checked segment by segment,
// and a tree is written into a fresh temporary folder and renamed into place
// only once complete.
package source

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"sort"
	"strings"
)

// Well-known file names at the root of a source tree.
const (
	// DockerfileName is where a tree keeps its Dockerfile.
	DockerfileName = "Dockerfile"
	// GoModName marks a Go module.
	GoModName = "go.mod"
)

// MaxUserIDLen is the longest user id accepted.
const MaxUserIDLen = 32

// ValidateUserID checks a user id: 1 to 32 characters, lower-case ASCII
// letters, digits and dashes, starting with a letter and not ending with a
// dash. A valid user id is safe in file names, container names and labels.
func ValidateUserID(id string) error {
	bad := func(format string, a ...any) error {
		return &ValidationError{Field: "user_id", Reason: fmt.Sprintf("%s ", quoteShort(id)) + fmt.Sprintf(format, a...)}
	}
	switch {
	case id == "":
		return &ValidationError{Field: "user_id", Reason: "must not be empty"}
	case len(id) > MaxUserIDLen:
		return bad("is %d characters long; at most %d are allowed", len(id), MaxUserIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return bad("contains %q at position %d; only lower-case letters, digits and dashes are allowed", rune(c), i+1)
		}
	}
	if c := id[0]; c < 'a' || c > 'z' {
		return bad("must start with a lower-case letter")
	}
	if id[len(id)-1] == '-' {
		return bad("must not end with a dash")
	}
	return nil
}

// buildIDPrefix starts every build id; buildIDHexLen hex digits follow it.
const (
	buildIDPrefix = "build-"
	buildIDHexLen = 24
	// legacyBuildIDHexLen is the length of ids made before build ids
	// included the owner (hershy/build-id/v1): still valid in stored
	// records, which the Host migrates (see LegacyBuildID).
	legacyBuildIDHexLen = 12
	// buildIDDomain separates this hash from any other use of sha256 over
	// similar bytes; bump its version if the encoding ever changes.
	buildIDDomain       = "hershy/build-id/v2\x00"
	legacyBuildIDDomain = "hershy/build-id/v1\x00"
)

// BuildID is the content hash of a program's source as its owner sent it:
// "build-" and the first 24 hex digits of a sha256 over an unambiguous
// encoding of the owner, the Dockerfile and every file, sorted by path.
// Each string is preceded by its length, so no two different inputs encode
// to the same bytes (moving bytes from a path into its content, or from one
// file into the next, changes the id), and map order does not matter.
//
// The owner is part of the id so that nothing built for one user is ever
// reused for another: an image is tagged by build id, and two users sending
// the same source get two builds, each from its owner's own build cache.
// 96 bits leave no room to forge another user's id.
//
// A root file named "Dockerfile" given with an empty dockerfile counts as the
// Dockerfile, exactly as if it had been passed as dockerfile: both forms
// describe the same build and get the same id, and a tree read back with
// ReadTree hashes to the id of the input it was written from.
func BuildID(owner, dockerfile string, files Files) string {
	h := sha256.New()
	h.Write([]byte(buildIDDomain))
	writeString(h, owner)
	writeSource(h, dockerfile, files)
	return buildIDPrefix + hex.EncodeToString(h.Sum(nil))[:buildIDHexLen]
}

// LegacyBuildID is the id the first Hosts gave a source (no owner, 12 hex
// digits). The Host recognises stored programs by it and moves them to
// BuildID.
func LegacyBuildID(dockerfile string, files Files) string {
	h := sha256.New()
	h.Write([]byte(legacyBuildIDDomain))
	writeSource(h, dockerfile, files)
	return buildIDPrefix + hex.EncodeToString(h.Sum(nil))[:legacyBuildIDHexLen]
}

// IsLegacyBuildID reports whether id has the first Hosts' form.
func IsLegacyBuildID(id string) bool {
	return len(id) == len(buildIDPrefix)+legacyBuildIDHexLen && ValidateBuildID(id) == nil
}

func writeSource(h hash.Hash, dockerfile string, files Files) {
	dockerfile, files = canonical(dockerfile, files)
	writeString(h, dockerfile)
	writeUint(h, uint64(len(files)))
	for _, p := range files.Paths() {
		writeString(h, p)
		writeString(h, files[p])
	}
}

func writeUint(h hash.Hash, n uint64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	h.Write(b[:])
}

func writeString(h hash.Hash, s string) {
	writeUint(h, uint64(len(s)))
	h.Write([]byte(s))
}

// canonical moves a root "Dockerfile" file into dockerfile when dockerfile
// is empty. files is not modified.
func canonical(dockerfile string, files Files) (string, Files) {
	df, ok := files[DockerfileName]
	if dockerfile != "" || !ok {
		return dockerfile, files
	}
	rest := make(Files, len(files)-1)
	for p, c := range files {
		if p != DockerfileName {
			rest[p] = c
		}
	}
	return df, rest
}

// ValidateBuildID checks that id has the form BuildID produces.
// (or the legacy form, with 12 digits).
func ValidateBuildID(id string) error {
	n := len(id) - len(buildIDPrefix)
	if !strings.HasPrefix(id, buildIDPrefix) || (n != buildIDHexLen && n != legacyBuildIDHexLen) || !isLowerHex(id[len(buildIDPrefix):]) {
		return &ValidationError{Field: "build_id", Reason: fmt.Sprintf("%s is not of the form build-<24 lower-case hex digits>", quoteShort(id))}
	}
	return nil
}

// programIDRandLen is the number of random hex digits ending a program id.
const programIDRandLen = 8

// NewProgramID returns "{userID}-{buildID}-{8 random hex digits}" (from
// crypto/rand). Both arguments must already be valid (ValidateUserID,
// ValidateBuildID); the result then passes ValidateProgramID.
func NewProgramID(userID, buildID string) string {
	var b [programIDRandLen / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("source: crypto/rand failed: " + err.Error()) // never happens on supported systems
	}
	return userID + "-" + buildID + "-" + hex.EncodeToString(b[:])
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return s != ""
}

// Paths returns the paths of files, sorted.
func (f Files) Paths() []string {
	ps := make([]string, 0, len(f))
	for p := range f {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// IsGoModule reports whether a source is built from Go source by the Host:
// it has a go.mod at its root and no Dockerfile (neither the dockerfile
// argument nor a root "Dockerfile" file).
func IsGoModule(dockerfile string, files Files) bool {
	_, hasDockerfile := files[DockerfileName]
	_, hasGoMod := files[GoModName]
	return dockerfile == "" && !hasDockerfile && hasGoMod
}

// sourceDigestDomain separates source digests from build ids.
const sourceDigestDomain = "hershy source digest v1\x00"

// Digest is a source's content digest, "sha256:<64 hex digits>", over the
// same encoding as BuildID but without the owner: two users' identical
// sources have one digest. A release records it.
func Digest(dockerfile string, files Files) string {
	h := sha256.New()
	h.Write([]byte(sourceDigestDomain))
	writeSource(h, dockerfile, files)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
