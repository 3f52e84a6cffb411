#include "cache/cache_discovery.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tests/unit/fixtures.h"

namespace gocache {
namespace {

using namespace std::chrono_literals;
using testing_util::TempDir;

Getenv Env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) {
    const auto it = vars.find(name);
    return it == vars.end() ? std::string() : it->second;
  };
}

std::string Cwd() { return std::filesystem::current_path().string(); }

// Comparable and printable: {path, kind label}.
using Caches = std::vector<std::pair<std::string, std::string>>;

Caches Flat(const std::vector<CacheDir>& dirs) {
  Caches out;
  for (const auto& dir : dirs) out.emplace_back(dir.path, std::string(KindLabel(dir.kind)));
  return out;
}

Caches Defaults(std::map<std::string, std::string> vars) {
  return Flat(DefaultCaches(Env(std::move(vars))));
}

TEST(DefaultCachesTest, GocacheSet) {
  EXPECT_EQ(Defaults({{"GOCACHE", "/ci/go-build"}, {"HOME", "/home/u"}}),
            (Caches{{"/ci/go-build", "build"}, {"/home/u/go/pkg/mod", "mod"}}));
}

TEST(DefaultCachesTest, GocacheWinsOverXdgAndIsNormalized) {
  EXPECT_EQ(Defaults({{"GOCACHE", "/ci/./go-build/"}, {"XDG_CACHE_HOME", "/xdg"}, {"HOME", "/h"}}),
            (Caches{{"/ci/go-build", "build"}, {"/h/go/pkg/mod", "mod"}}));
}

TEST(DefaultCachesTest, GocacheOff) {
  EXPECT_EQ(Defaults({{"GOCACHE", "off"}, {"HOME", "/home/u"}}),
            (Caches{{"/home/u/go/pkg/mod", "mod"}}));
  EXPECT_EQ(Defaults({{"GOCACHE", "off"}, {"XDG_CACHE_HOME", "/xdg"}, {"GOMODCACHE", "/m"}}),
            (Caches{{"/m", "mod"}}));
}

TEST(DefaultCachesTest, XdgCacheHome) {
  EXPECT_EQ(Defaults({{"XDG_CACHE_HOME", "/xdg"}, {"HOME", "/home/u"}}),
            (Caches{{"/xdg/go-build", "build"}, {"/home/u/go/pkg/mod", "mod"}}));
}

TEST(DefaultCachesTest, HomeOnly) {
  EXPECT_EQ(Defaults({{"HOME", "/home/u"}}),
            (Caches{{"/home/u/.cache/go-build", "build"}, {"/home/u/go/pkg/mod", "mod"}}));
}

TEST(DefaultCachesTest, Gomodcache) {
  EXPECT_EQ(Defaults({{"GOMODCACHE", "/mods"}, {"GOPATH", "/gp"}, {"HOME", "/home/u"}}),
            (Caches{{"/home/u/.cache/go-build", "build"}, {"/mods", "mod"}}));
}

TEST(DefaultCachesTest, GopathFirstEntry) {
  EXPECT_EQ(Defaults({{"GOPATH", "/gp1:/gp2:/gp3"}, {"HOME", "/home/u"}}),
            (Caches{{"/home/u/.cache/go-build", "build"}, {"/gp1/pkg/mod", "mod"}}));
  EXPECT_EQ(Defaults({{"GOPATH", "/only"}}), (Caches{{"/only/pkg/mod", "mod"}}));
}

TEST(DefaultCachesTest, NothingSet) { EXPECT_TRUE(Defaults({}).empty()); }

TEST(GoEnvironmentTest, TheEnvironmentThenTheGoEnvFile) {
  TempDir dir;
  dir.MakeDir("config/go");
  dir.WriteFile("config/go/env",
                "GOCACHE=/srv/go-build\nGOCACHEPROG=helper --flag\nGOFLAGS=-mod=mod\n");
  const auto go = GoEnvironment(Env({{"XDG_CONFIG_HOME", dir / "config"}, {"GOFLAGS", "-v"}}));
  EXPECT_EQ(go("GOCACHE"), "/srv/go-build");
  EXPECT_EQ(go("GOCACHEPROG"), "helper --flag");
  EXPECT_EQ(go("GOFLAGS"), "-v") << "the environment wins";
  EXPECT_EQ(go("GOPATH"), "");
  EXPECT_EQ(GoCacheProg(Env({{"XDG_CONFIG_HOME", dir / "config"}})), "helper --flag");
  EXPECT_EQ(DefaultBuildCache(Env({{"XDG_CONFIG_HOME", dir / "config"}, {"HOME", "/home/u"}})),
            "/srv/go-build");
  // GOENV names the file, or turns it off.
  EXPECT_EQ(GoEnvironment(Env({{"GOENV", dir / "config/go/env"}}))("GOCACHE"), "/srv/go-build");
  EXPECT_EQ(GoEnvironment(Env({{"GOENV", "off"}, {"XDG_CONFIG_HOME", dir / "config"}}))("GOCACHE"),
            "");
  EXPECT_EQ(GoCacheProg(Env({{"HOME", dir / "nowhere"}})), "") << "no file, no helper";
}

TEST(ParseGoEnvTest, BothLines) {
  EXPECT_EQ(Flat(ParseGoEnv("/home/u/.cache/go-build\n/home/u/go/pkg/mod\n")),
            (Caches{{"/home/u/.cache/go-build", "build"}, {"/home/u/go/pkg/mod", "mod"}}));
  EXPECT_EQ(Flat(ParseGoEnv("a\nb\n")), (Caches{{Cwd() + "/a", "build"}, {Cwd() + "/b", "mod"}}));
}

TEST(ParseGoEnvTest, BuildCacheOff) {
  EXPECT_EQ(Flat(ParseGoEnv("off\n/m\n")), (Caches{{"/m", "mod"}}));
  EXPECT_EQ(Flat(ParseGoEnv("off\nb\n")), (Caches{{Cwd() + "/b", "mod"}}));
}

TEST(ParseGoEnvTest, MissingSecondLine) {
  EXPECT_EQ(Flat(ParseGoEnv("/c\n")), (Caches{{"/c", "build"}}));
  EXPECT_EQ(Flat(ParseGoEnv("/c")), (Caches{{"/c", "build"}}));
  EXPECT_EQ(Flat(ParseGoEnv("/c\n\n")), (Caches{{"/c", "build"}}));
  EXPECT_EQ(Flat(ParseGoEnv("\n/m\n")), (Caches{{"/m", "mod"}}));
  EXPECT_TRUE(ParseGoEnv("").empty());
  EXPECT_TRUE(ParseGoEnv("\n").empty());
}

TEST(AbsolutePathTest, Values) {
  const std::string cwd = Cwd();
  EXPECT_EQ(AbsolutePath("/a/b"), "/a/b");
  EXPECT_EQ(AbsolutePath("rel/dir"), cwd + "/rel/dir");
  EXPECT_EQ(AbsolutePath("/tmp/x/"), "/tmp/x");
  EXPECT_EQ(AbsolutePath("/tmp/x///"), "/tmp/x");
  EXPECT_EQ(AbsolutePath("/a/./b/../c"), "/a/c");
  EXPECT_EQ(AbsolutePath("a/./b/../c"), cwd + "/a/c");
  EXPECT_EQ(AbsolutePath("/a//b"), "/a/b");
  EXPECT_EQ(AbsolutePath("/"), "/");
  EXPECT_EQ(AbsolutePath("."), cwd);
  EXPECT_EQ(AbsolutePath("./x/"), cwd + "/x");
  EXPECT_EQ(AbsolutePath(".."), std::filesystem::current_path().parent_path().string());
}

TEST(DiscoverCachesTest, ConfiguredDirectoriesWin) {
  EXPECT_EQ(Flat(DiscoverCaches({"/b1", "rel/b2/"}, {"/m1"}, 100ms)),
            (Caches{{"/b1", "build"}, {Cwd() + "/rel/b2", "build"}, {"/m1", "mod"}}));
  EXPECT_EQ(Flat(DiscoverCaches({}, {"/m1"}, 100ms)), (Caches{{"/m1", "mod"}}));
}

TEST(FindSameDirectoryTest, ByPathAndByIdentity) {
  EXPECT_FALSE(FindSameDirectory({"/a", "/b", "/a/b"}).has_value());
  EXPECT_EQ(FindSameDirectory({"/a", "/b", "/a/"}), std::make_pair(size_t{0}, size_t{2}));
  EXPECT_EQ(FindSameDirectory({"/x/./y", "/z", "/x/y//"}), std::make_pair(size_t{0}, size_t{2}));
  TempDir tmp;
  const std::string dir = tmp.MakeDir("cache");
  const std::string link = tmp / "link";
  std::filesystem::create_directory_symlink(dir, link);
  EXPECT_EQ(FindSameDirectory({link, tmp.MakeDir("other"), dir}),
            std::make_pair(size_t{0}, size_t{2}));
}

TEST(MarkNestedCachesTest, CachesInsideOthers) {
  TempDir tmp;
  const std::string build = tmp.MakeDir("go-build");
  const std::string outside = tmp.MakeDir("elsewhere");
  std::vector<CacheDir> caches = {{build, CacheKind::kBuild},
                                  {build + "/mod", CacheKind::kMod},  // not there yet
                                  {build + "-2", CacheKind::kBuild},  // a prefix, not inside
                                  {outside, CacheKind::kMod}};
  // Inside by its real path only.
  std::filesystem::create_directory_symlink(outside, build + "/linked");
  caches.push_back({build + "/linked/sub", CacheKind::kMod});
  std::filesystem::create_directory(outside + "/sub");
  MarkNestedCaches(caches);
  EXPECT_EQ(caches[0].nested, (std::vector<std::string>{build + "/mod", build + "/linked/sub"}));
  EXPECT_TRUE(caches[1].nested.empty());
  EXPECT_TRUE(caches[2].nested.empty());
  EXPECT_EQ(caches[3].nested, (std::vector<std::string>{build + "/linked/sub"}));
}

}  // namespace
}  // namespace gocache
