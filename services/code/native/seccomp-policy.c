/*
 * toolplane-seccomp-policy: writes the seccomp filter of every Python session kernel as a
 * classic BPF program (the format bubblewrap's --seccomp and prctl(PR_SET_SECCOMP) take).
 *
 * Run once at build time (`make build`): `seccomp-policy OUT.bpf`. The program is built with
 * libseccomp, which resolves syscall numbers for the build machine's architecture and rejects
 * calls made through another ABI (x32, i386 int 0x80) on it; nothing links libseccomp at run
 * time. The policy and its threat model: docs/security.md, "Seccomp".
 *
 * Everything is allowed except what a sandboxed interpreter never needs and what widens the
 * kernel's attack surface or reaches past the sandbox. A denied call fails with EPERM (the
 * model's code sees an OSError) and never kills the process, so a library that probes a call
 * keeps working and blame stays with the code that made it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Denied outright: debugging and memory of other processes, kernel keyrings, eBPF,
 * userfaultfd and perf (classic exploit primitives), kernel modules and kexec, every
 * mount and namespace change (sessions are set up before the filter is installed),
 * io_uring (a large attack surface that bypasses per-syscall filtering), file handles
 * (open_by_handle_at), chroot, swap, reboot, accounting, quotas and the kernel log. */
static const char *const DENIED[] = {
    "ptrace",         "process_vm_readv", "process_vm_writev", "kcmp",          "keyctl",
    "add_key",        "request_key",      "bpf",               "userfaultfd",   "perf_event_open",
    "kexec_load",     "kexec_file_load",  "init_module",       "finit_module",  "delete_module",
    "mount",          "umount2",          "pivot_root",        "chroot",        "unshare",
    "setns",          "fsopen",           "fsconfig",          "fsmount",       "fspick",
    "move_mount",     "open_tree",        "mount_setattr",     "io_uring_setup", "io_uring_enter",
    "io_uring_register", "open_by_handle_at", "name_to_handle_at", "swapon",      "swapoff",
    "reboot",         "acct",             "quotactl",          "syslog",        "lookup_dcookie",
    "vhangup",
};

static int fail(const char *what, int rc) {
  fprintf(stderr, "seccomp-policy: %s: %s\n", what, strerror(-rc));
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s OUT.bpf\n", argv[0]);
    return 64;
  }
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) return fail("seccomp_init", -ENOMEM);
  int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(EPERM));
  if (rc < 0) return fail("badarch action", rc);
  for (size_t i = 0; i < sizeof DENIED / sizeof DENIED[0]; i++) {
    int number = seccomp_syscall_resolve_name(DENIED[i]);
    if (number == __NR_SCMP_ERROR) continue; /* not a call on this architecture */
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), number, 0);
    if (rc < 0) return fail(DENIED[i], rc);
  }
  static const unsigned long namespace_flags[] = {CLONE_NEWNS,   CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
                                                  CLONE_NEWUSER, CLONE_NEWPID,    CLONE_NEWNET};
  for (size_t i = 0; i < sizeof namespace_flags / sizeof namespace_flags[0]; i++) {
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, namespace_flags[i], namespace_flags[i]));
    if (rc < 0) return fail("clone", rc);
  }
  /* clone3 passes its flags in memory, where a filter cannot read them: ENOSYS makes glibc fall
   * back to clone (threads, posix_spawn), whose flags the rules above check. */
  rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  if (rc < 0) return fail("clone3", rc);
  /* personality(): only the default (PER_LINUX, 0), so code cannot turn off address-space
   * randomisation (ADDR_NO_RANDOMIZE) or map page 0 (MMAP_PAGE_ZERO). libseccomp cannot AND two
   * tests of one argument, so the query (0xffffffff) is refused too; nothing in the sandbox uses it. */
  rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1, SCMP_A0_32(SCMP_CMP_NE, 0));
  if (rc < 0) return fail("personality", rc);
  int out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out < 0) return fail(argv[1], -errno);
  rc = seccomp_export_bpf(ctx, out);
  if (rc < 0) return fail("export", rc);
  if (close(out) != 0) return fail(argv[1], -errno);
  seccomp_release(ctx);
  return 0;
}
