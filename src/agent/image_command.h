#pragma once

namespace fulcrum::agent {

// `fulcrum image import FILE [--name REF] | ls | rm REF [--root DIR]`: argv[0] is the
// subcommand. Writes results to stdout and errors to stderr; returns the process exit code
// (0 success, 1 failure, 2 usage).
int RunImageCommand(int argc, char** argv);

}  // namespace fulcrum::agent
