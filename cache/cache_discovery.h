// Which cache directories to watch: the ones given on the command line, else
// the current user's, as the go command itself would report them.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/paths.h"
#include "cache/cache_dir.h"

namespace gocache {

// Looks up an environment variable; injectable for tests.
using Getenv = std::function<std::string(const std::string&)>;

// This process's environment ("" for a variable that is not set).
std::string ProcessEnv(const std::string& name);

// The go command's documented defaults, its variables read as GoEnvironment
// does (GOCACHE, else $XDG_CACHE_HOME/go-build, else $HOME/.cache/go-build;
// GOMODCACHE, else the first GOPATH entry's pkg/mod, else $HOME/go/pkg/mod).
// GOCACHE=off yields no build cache.
std::vector<CacheDir> DefaultCaches(const Getenv& getenv);

// The environment as the go command sees it: a variable's value where set,
// else the one `go env -w` recorded in the go env file ($GOENV, else
// $XDG_CONFIG_HOME/go/env, else $HOME/.config/go/env), read once.
Getenv GoEnvironment(const Getenv& getenv);

// The build cache of DefaultCaches, or "" for none.
std::string DefaultBuildCache(const Getenv& getenv);

// The GOCACHEPROG the go command would use (from GoEnvironment). Empty for
// none: the go command then writes its GOCACHE itself.
std::string GoCacheProg(const Getenv& getenv);

// Whether two paths name one directory: the same absolute path, or, where
// both exist, the same directory.
bool SameDirectory(const std::string& a, const std::string& b);

// Parses the output of `go env GOCACHE GOMODCACHE`.
std::vector<CacheDir> ParseGoEnv(const std::string& output);

// Records in each cache the other caches that lie inside it (by path, or,
// where both exist, by the real path), so that its scan leaves them to their
// own, and logs each once.
void MarkNestedCaches(std::vector<CacheDir>& caches);

// Which two of the configured directories are the same one (by path, or,
// where both exist, as the same directory): the indexes into cache_dirs
// followed by modcache_dirs, or none.
std::optional<std::pair<size_t, size_t>> FindSameDirectory(const std::vector<std::string>& dirs);

// The configured directories when any are given; otherwise `go env` when a go
// binary is on PATH (bounded by `go_env_timeout`), else the defaults. Nested
// caches are marked (MarkNestedCaches).
std::vector<CacheDir> DiscoverCaches(const std::vector<std::string>& cache_dirs,
                                     const std::vector<std::string>& modcache_dirs,
                                     std::chrono::milliseconds go_env_timeout);

}  // namespace gocache
