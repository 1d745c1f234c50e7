// Package guidetest holds the tests that keep the Entra ID setup guide (docs/entra-setup.md and its
// Swedish twin docs/entra-setup.sv.md) true: they read the guide's ```sh blocks, build the inkorg
// binary, start the emulator and run every `inkorg settings …` and `inkorg doctor …` line in the order
// the guide gives them, for each authentication flow, checking that each doctor line passes the step
// it names. The package has no code of its own besides this comment; everything is in its tests.
package guidetest
