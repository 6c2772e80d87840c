#include "store/store.h"

#include "store/memory_store.h"
#include "store/sqlite_store.h"

namespace fulcrum::store {

std::string RangeEndForPrefix(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last != 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  // No key bounds the prefix (it is empty or all 0xff bytes): "" means no upper bound.
  return end;
}

Result<std::unique_ptr<Store>> OpenStore(const std::string& uri) {
  if (uri == "memory:") return std::unique_ptr<Store>(std::make_unique<MemoryStore>());
  constexpr std::string_view kSqlite = "sqlite:";
  if (uri.starts_with(kSqlite) && uri.size() > kSqlite.size()) {
    ASSIGN_OR_RETURN(std::unique_ptr<SqliteStore> store,
                     SqliteStore::Open(uri.substr(kSqlite.size())));
    return std::unique_ptr<Store>(std::move(store));
  }
  return base::BadRequest("unsupported store URI \"" + uri +
                          "\": want \"memory:\" or \"sqlite:/path/to/file.db\"");
}

}  // namespace fulcrum::store
