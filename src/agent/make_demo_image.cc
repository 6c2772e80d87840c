// Builds the demo image: an OCI layout tarball of fulcrum.dev/busybox:demo from a static busybox.
// usage: make_demo_image BUSYBOX OUTPUT
#include <cstdio>
#include <string>

#include "agent/image_archive.h"
#include "agent/image_store.h"
#include "agent/tar.h"
#include "base/file.h"

int main(int argc, char** argv) {
  using namespace fulcrum;
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_demo_image BUSYBOX OUTPUT\n");
    return 2;
  }
  auto busybox = base::ReadFile(argv[1]);
  if (!busybox.ok()) {
    std::fprintf(stderr, "make_demo_image: %s\n", busybox.status().ToString().c_str());
    return 1;
  }
  std::string layer;
  agent::TarWriter tar(&layer);
  tar.AddDirectory("bin");
  tar.AddFile("bin/busybox", *busybox, 0755);
  for (const char* applet :
       {"sh", "ash", "sleep", "echo", "cat", "ls", "httpd", "wget", "nc", "env", "id", "true",
        "false", "ps", "mkdir", "rm", "hostname", "ip", "ifconfig", "ping", "grep", "sed", "awk",
        "head", "tail", "wc", "date", "cp", "mv", "touch", "chmod", "kill", "pwd", "uname",
        "whoami", "test", "[", "printf", "vi", "top", "df", "du", "find", "xargs", "sort", "nslookup",
        "mount", "umount", "ln", "readlink", "seq", "tee", "timeout", "nproc", "free", "uptime"}) {
    tar.AddSymlink(std::string("bin/") + applet, "busybox");
  }
  tar.AddDirectory("etc");
  tar.AddFile("etc/passwd",
              "root:x:0:0:root:/root:/bin/sh\n"
              "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
  tar.AddFile("etc/group", "root:x:0:\nnobody:x:65534:\n");
  tar.AddDirectory("root", 0700);
  tar.AddDirectory("tmp", 01777);
  for (const char* mountpoint : {"dev", "proc", "sys", "var", "var/www"}) {
    tar.AddDirectory(mountpoint);
  }
  tar.Finish();

  agent::ImageSpec spec;
  spec.name = "fulcrum.dev/busybox:demo";
  spec.architecture = agent::HostArchitecture();
  spec.config = {{"Cmd", {"sh"}},
                 {"Env", {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}};
  spec.layers = {layer};
  base::Status st = base::WriteFileAtomic(argv[2], agent::WriteOciLayout({spec}));
  if (!st.ok()) {
    std::fprintf(stderr, "make_demo_image: %s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}
