// HTTP basic authentication against bcrypt hashes, checked with libcrypt.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace gocache {

// The cost of a bcrypt hash ("$2a$", "$2b$" or "$2y$", two-digit cost, 53
// characters of salt and hash), or nullopt when `hash` is not one.
std::optional<int> BcryptCost(std::string_view hash);

// Decodes standard base64 with padding; nullopt for anything else.
std::optional<std::string> DecodeBase64(std::string_view text);

class BasicAuth {
 public:
  // user -> bcrypt hash, already checked with BcryptCost.
  explicit BasicAuth(std::map<std::string, std::string> users);

  bool enabled() const { return !users_.empty(); }

  // Whether an Authorization header value ("Basic <base64 user:password>")
  // names a user and the password that hashes to theirs.
  bool Allows(const char* authorization_header);

 private:
  bool Verify(const std::string& user, const std::string& password);

  const std::map<std::string, std::string> users_;
  // bcrypt is deliberately slow: hash one password at a time, so that a flood
  // of bad logins takes one CPU rather than every one, and remember the
  // credentials that passed so that each scrape does not pay for a hash.
  std::mutex hash_mu_;
  std::mutex cache_mu_;
  std::set<std::string> verified_;  // SHA-256 of user, password and hash
};

}  // namespace gocache
