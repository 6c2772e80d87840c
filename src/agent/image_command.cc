#include "agent/image_command.h"

#include <cstdio>
#include <string>
#include <vector>

#include "agent/image_store.h"
#include "agent/registry.h"

namespace fulcrum::agent {

namespace {

const char kUsage[] =
    "usage: fulcrum image <command> [flags]\n"
    "\n"
    "commands:\n"
    "  import FILE [--name REF]   import an OCI image layout tarball or a docker-save archive\n"
    "  pull REF                   pull an image from its registry (OCI distribution API)\n"
    "  ls                         list images\n"
    "  rm REF...                  remove images (layers still used by others stay)\n"
    "\n"
    "flags:\n"
    "  --root DIR   the agent's root directory (default /var/lib/fulcrum/agent)\n"
    "  --insecure-registry HOST[:PORT]   pull from this registry over plain HTTP\n"
    "                                    (localhost and 127.0.0.1 always are)\n"
    "  --username USER --password PASS   credentials for the registry (pull)\n";

std::string HumanSize(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

}  // namespace

int RunImageCommand(int argc, char** argv) {
  if (argc < 1 || std::string(argv[0]) == "-h" || std::string(argv[0]) == "--help") {
    std::fputs(kUsage, argc < 1 ? stderr : stdout);
    return argc < 1 ? 2 : 0;
  }
  std::string command = argv[0];
  std::string root = "/var/lib/fulcrum/agent", name, insecure;
  RegistryOptions registry;
  RegistryAuth auth;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const std::string& flag, std::string* out) {
      if (a == flag) {
        if (i + 1 >= argc) return false;
        *out = argv[++i];
        return true;
      }
      if (a.rfind(flag + "=", 0) == 0) {
        *out = a.substr(flag.size() + 1);
        return true;
      }
      return false;
    };
    if (value("--root", &root) || value("--name", &name) || value("--username", &auth.username) ||
        value("--password", &auth.password)) {
      continue;
    }
    if (value("--insecure-registry", &insecure)) {
      registry.insecure.push_back(insecure);
      continue;
    }
    if (a.rfind("--", 0) == 0) {
      std::fprintf(stderr, "fulcrum image: unknown or incomplete flag %s\n%s", a.c_str(), kUsage);
      return 2;
    }
    args.push_back(a);
  }
  bool ok_args = (command == "import" && args.size() == 1) || (command == "ls" && args.empty()) ||
                 (command == "pull" && args.size() == 1) ||
                 (command == "rm" && !args.empty());
  if (!ok_args || (!name.empty() && command != "import")) {
    std::fprintf(stderr, "fulcrum image: bad arguments for \"%s\"\n%s", command.c_str(), kUsage);
    return 2;
  }
  auto store = ImageStore::Open(root);
  if (!store.ok()) {
    std::fprintf(stderr, "fulcrum image: %s\n", store.status().ToString().c_str());
    return 1;
  }
  if (command == "import") {
    auto refs = (*store)->Import(args[0], name);
    if (!refs.ok()) {
      std::fprintf(stderr, "fulcrum image import: %s\n", refs.status().ToString().c_str());
      return 1;
    }
    for (const auto& ref : *refs) {
      auto image = (*store)->Resolve(ref);
      std::printf("imported %s (%s)\n", ref.c_str(),
                  image.ok() ? image->manifest_digest.c_str() : "?");
    }
    return 0;
  }
  if (command == "pull") {
    auto ref = NormaliseImageRef(args[0]);
    auto source = ref.ok() ? OpenRegistry(*ref, registry, auth)
                           : base::Result<std::unique_ptr<ImageSource>>(ref.status());
    auto pulled = source.ok() ? (*store)->Pull(*ref, source->get())
                              : base::Result<std::string>(source.status());
    if (!pulled.ok()) {
      std::fprintf(stderr, "fulcrum image pull: %s\n", pulled.status().ToString().c_str());
      return 1;
    }
    auto image = (*store)->Resolve(*pulled);
    std::printf("pulled %s (%s)\n", pulled->c_str(),
                image.ok() ? image->manifest_digest.c_str() : "?");
    return 0;
  }
  if (command == "ls") {
    auto images = (*store)->List();
    if (!images.ok()) {
      std::fprintf(stderr, "fulcrum image ls: %s\n", images.status().ToString().c_str());
      return 1;
    }
    std::printf("%-40s %-19s %-6s %-13s %s\n", "REFERENCE", "DIGEST", "LAYERS", "PLATFORM", "SIZE");
    for (const auto& i : *images) {
      std::printf("%-40s %-19s %-6zu %-13s %s\n", i.ref.c_str(),
                  i.manifest_digest.substr(0, 19).c_str(), i.layer_dirs.size(),
                  (i.config.os + "/" + i.config.architecture).c_str(), HumanSize(i.size).c_str());
    }
    return 0;
  }
  int rc = 0;
  for (const auto& ref : args) {
    base::Status st = (*store)->Remove(ref);
    if (!st.ok()) {
      std::fprintf(stderr, "fulcrum image rm: %s\n", st.ToString().c_str());
      rc = 1;
      continue;
    }
    std::printf("removed %s\n", ref.c_str());
  }
  return rc;
}

}  // namespace fulcrum::agent
