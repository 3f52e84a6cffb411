#include "cache/cache_discovery.h"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "base/log.h"
#include "base/subprocess.h"

namespace gocache {

std::string ProcessEnv(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  return value ? value : "";
}

namespace {

// The go env file's KEY=VALUE lines, as `go env -w` writes them: $GOENV,
// else $XDG_CONFIG_HOME/go/env, else $HOME/.config/go/env.
std::map<std::string, std::string> ReadGoEnvFile(const Getenv& getenv) {
  std::map<std::string, std::string> values;
  std::string file = getenv("GOENV");
  if (file == "off") return values;
  if (file.empty()) {
    const std::string xdg = getenv("XDG_CONFIG_HOME");
    const std::string home = getenv("HOME");
    if (!xdg.empty()) {
      file = xdg + "/go/env";
    } else if (!home.empty()) {
      file = home + "/.config/go/env";
    } else {
      return values;
    }
  }
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    const size_t equals = line.find('=');
    if (equals != std::string::npos && equals > 0) {
      values[line.substr(0, equals)] = line.substr(equals + 1);
    }
  }
  return values;
}

}  // namespace

Getenv GoEnvironment(const Getenv& getenv) {
  return [getenv, file = ReadGoEnvFile(getenv)](const std::string& name) {
    if (std::string value = getenv(name); !value.empty()) return value;
    const auto it = file.find(name);
    return it == file.end() ? std::string() : it->second;
  };
}

std::vector<CacheDir> DefaultCaches(const Getenv& process_getenv) {
  const Getenv getenv = GoEnvironment(process_getenv);
  std::vector<CacheDir> caches;
  const std::string home = getenv("HOME");
  std::string build = getenv("GOCACHE");
  if (build.empty()) {
    const std::string xdg = getenv("XDG_CACHE_HOME");
    if (!xdg.empty()) {
      build = xdg + "/go-build";
    } else if (!home.empty()) {
      build = home + "/.cache/go-build";
    }
  }
  if (!build.empty() && build != "off") caches.push_back({AbsolutePath(build), CacheKind::kBuild});

  std::string mod = getenv("GOMODCACHE");
  if (mod.empty()) {
    std::string gopath = getenv("GOPATH");
    gopath = gopath.substr(0, gopath.find(':'));
    if (gopath.empty() && !home.empty()) gopath = home + "/go";
    if (!gopath.empty()) mod = gopath + "/pkg/mod";
  }
  if (!mod.empty()) caches.push_back({AbsolutePath(mod), CacheKind::kMod});
  return caches;
}

std::string DefaultBuildCache(const Getenv& getenv) {
  for (const auto& cache : DefaultCaches(getenv)) {
    if (cache.kind == CacheKind::kBuild) return cache.path;
  }
  return "";
}

std::string GoCacheProg(const Getenv& getenv) { return GoEnvironment(getenv)("GOCACHEPROG"); }

std::vector<CacheDir> ParseGoEnv(const std::string& output) {
  std::vector<CacheDir> caches;
  size_t eol = output.find('\n');
  const std::string build = output.substr(0, eol);
  const std::string rest = eol == std::string::npos ? "" : output.substr(eol + 1);
  const std::string mod = rest.substr(0, rest.find('\n'));
  if (!build.empty() && build != "off") caches.push_back({AbsolutePath(build), CacheKind::kBuild});
  if (!mod.empty()) caches.push_back({AbsolutePath(mod), CacheKind::kMod});
  return caches;
}

namespace {

// The configured directories, else go env's, else the defaults.
std::vector<CacheDir> FindCaches(const std::vector<std::string>& cache_dirs,
                                 const std::vector<std::string>& modcache_dirs,
                                 std::chrono::milliseconds go_env_timeout) {
  if (!cache_dirs.empty() || !modcache_dirs.empty()) {
    std::vector<CacheDir> caches;
    for (const auto& dir : cache_dirs) caches.push_back({AbsolutePath(dir), CacheKind::kBuild});
    for (const auto& dir : modcache_dirs) caches.push_back({AbsolutePath(dir), CacheKind::kMod});
    return caches;
  }
  if (!FindOnPath("go").empty()) {
    const auto result = RunCommand({.argv = {"go", "env", "GOCACHE", "GOMODCACHE"},
                                    .timeout = go_env_timeout,
                                    .max_output = 64 * 1024});
    if (result.error.empty()) {
      auto caches = ParseGoEnv(result.output);
      if (!caches.empty()) return caches;
    }
    log::Warn("go env failed; using the go command's default cache locations",
              {{"err", result.error}, {"stderr", result.error_head}});
  }
  return DefaultCaches(ProcessEnv);
}

// The real path of an existing directory, or none.
std::optional<std::string> RealPath(const std::string& path) {
  char resolved[PATH_MAX];
  if (realpath(path.c_str(), resolved) == nullptr) return std::nullopt;
  return std::string(resolved);
}

bool Inside(const std::string& inner, const std::string& outer) {
  return inner.size() > outer.size() && inner.starts_with(outer) &&
         (outer == "/" || inner[outer.size()] == '/');
}

}  // namespace

bool SameDirectory(const std::string& a, const std::string& b) {
  if (AbsolutePath(a) == AbsolutePath(b)) return true;
  struct stat sa, sb;
  return stat(a.c_str(), &sa) == 0 && stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

std::optional<std::pair<size_t, size_t>> FindSameDirectory(const std::vector<std::string>& dirs) {
  for (size_t i = 0; i < dirs.size(); ++i) {
    for (size_t j = i + 1; j < dirs.size(); ++j) {
      if (SameDirectory(dirs[i], dirs[j])) return std::make_pair(i, j);
    }
  }
  return std::nullopt;
}

void MarkNestedCaches(std::vector<CacheDir>& caches) {
  for (auto& outer : caches) {
    const auto outer_real = RealPath(outer.path);
    for (const auto& inner : caches) {
      if (&inner == &outer) continue;
      const auto inner_real = RealPath(inner.path);
      if (!Inside(inner.path, outer.path) &&
          !(outer_real && inner_real && Inside(*inner_real, *outer_real))) {
        continue;
      }
      outer.nested.push_back(inner.path);
      log::Info("cache inside another: watched once, not counted again in the outer one",
                {{"path", inner.path}, {"inside", outer.path}});
    }
  }
}

std::vector<CacheDir> DiscoverCaches(const std::vector<std::string>& cache_dirs,
                                     const std::vector<std::string>& modcache_dirs,
                                     std::chrono::milliseconds go_env_timeout) {
  auto caches = FindCaches(cache_dirs, modcache_dirs, go_env_timeout);
  MarkNestedCaches(caches);
  return caches;
}

}  // namespace gocache
