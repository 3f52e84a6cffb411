#include "exporter/basic_auth.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>
#include <memory>

namespace gocache {
namespace {

constexpr std::string_view kBcryptAlphabet =
    "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

std::string Sha256(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), size);
}

}  // namespace

std::optional<int> BcryptCost(std::string_view hash) {
  // $2b$10$ then 22 characters of salt and 31 of hash.
  if (hash.size() != 60 || hash.substr(0, 2) != "$2" || hash[3] != '$' || hash[6] != '$')
    return std::nullopt;
  if (hash[2] != 'a' && hash[2] != 'b' && hash[2] != 'y') return std::nullopt;
  if (hash[4] < '0' || hash[4] > '9' || hash[5] < '0' || hash[5] > '9') return std::nullopt;
  if (hash.substr(7).find_first_not_of(kBcryptAlphabet) != std::string_view::npos)
    return std::nullopt;
  const int cost = (hash[4] - '0') * 10 + (hash[5] - '0');
  if (cost < 4 || cost > 31) return std::nullopt;
  return cost;
}

std::optional<std::string> DecodeBase64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  unsigned buffer = 0;
  int bits = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    unsigned value;
    if (c >= 'A' && c <= 'Z') {
      value = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      value = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      value = c - '0' + 52;
    } else if (c == '+') {
      value = 62;
    } else if (c == '/') {
      value = 63;
    } else if (c == '=' && i + 2 >= text.size() && (i + 1 == text.size() || text[i + 1] == '=')) {
      break;  // padding: one or two at the very end
    } else {
      return std::nullopt;
    }
    buffer = (buffer << 6) | value;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  return out;
}

BasicAuth::BasicAuth(std::map<std::string, std::string> users) : users_(std::move(users)) {}

bool BasicAuth::Allows(const char* authorization_header) {
  if (authorization_header == nullptr || users_.empty()) return false;
  constexpr std::string_view kScheme = "Basic ";
  std::string_view header(authorization_header);
  if (header.size() < kScheme.size() ||
      strncasecmp(header.data(), kScheme.data(), kScheme.size()) != 0)
    return false;
  const auto credentials = DecodeBase64(header.substr(kScheme.size()));
  if (!credentials) return false;
  const size_t colon = credentials->find(':');
  if (colon == std::string::npos) return false;
  return Verify(credentials->substr(0, colon), credentials->substr(colon + 1));
}

bool BasicAuth::Verify(const std::string& user, const std::string& password) {
  // crypt_r reads up to a NUL: "password\0anything" must not pass for it.
  if (password.find('\0') != std::string::npos) return false;
  const auto found = users_.find(user);
  // An unknown user costs a hash too, with a real user's cost and salt, so
  // that the time taken does not tell which users exist.
  const std::string& hash = found != users_.end() ? found->second : users_.begin()->second;
  const std::string key = Sha256(user + '\0' + password + '\0' + hash);
  if (found != users_.end()) {
    std::lock_guard lock(cache_mu_);
    if (verified_.count(key)) return true;
  }

  bool matches;
  {
    std::lock_guard lock(hash_mu_);
    auto data = std::make_unique<crypt_data>();  // 32 KiB: not on the stack
    const char* result = crypt_r(password.c_str(), hash.c_str(), data.get());
    matches = result != nullptr && std::strlen(result) == hash.size() &&
              CRYPTO_memcmp(result, hash.data(), hash.size()) == 0;
  }
  if (!matches || found == users_.end()) return false;
  std::lock_guard lock(cache_mu_);
  verified_.insert(key);
  return true;
}

}  // namespace gocache
