// /proc/self/mountinfo: which mount holds a path, so that filesystem series
// carry the same mountpoint and fstype labels as node_exporter's.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace gocache {

struct Mount {
  std::string mount_point;  // unescaped
  std::string root;         // the part of the filesystem mounted here (bind mounts)
  std::string fstype;
  std::string source;
};

// Parses the text of a mountinfo file (proc(5)); malformed lines are skipped.
std::vector<Mount> ParseMountInfo(std::string_view text);

// Undoes the kernel's octal escapes (\040 space, \011 tab, \012 newline,
// \134 backslash).
std::string UnescapeMountField(std::string_view field);

// The mount whose mount point is the longest prefix of `path` (an absolute
// path without symbolic links); among mounts stacked on one mount point, the
// last one listed, which is the one on top. nullptr when none matches.
const Mount* FindMount(const std::vector<Mount>& mounts, std::string_view path);

// Reads and parses a mountinfo file; on failure returns false with `error` set.
bool ReadMountInfo(const std::string& file, std::vector<Mount>& mounts, std::string& error);

}  // namespace gocache
