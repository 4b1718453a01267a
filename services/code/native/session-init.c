/*
 * toolplane-session-init: the two small processes around one forked Python session.
 *
 * The zygote (services/code/src/python/zygote.py) forks a first child per session. That
 * child unshares the session's namespaces, spawns `session-init init` (pid 1 of the new pid
 * namespace), forks the kernel (pid 2, a copy of the warm interpreter), and then execs
 * `session-init watch INIT KERNEL` itself. Neither role is a copy of the interpreter, so a
 * session costs one copy of the zygote's page tables (its kernel) and two tiny processes.
 *
 *   init   pid 1 of the session: reaps every orphan model code leaves. As pid 1 it gets no
 *          signal from inside its namespace that it does not handle (it handles none), and it
 *          is not dumpable, so the kernel can neither kill nor trace it. It ends only when
 *          killed from outside, and the pid namespace (every process in it) ends with it.
 *   watch  the zygote's child, outside the session: waits for the kernel; when the kernel
 *          ends, or on SIGTERM (the zygote asking to end the session), kills the init, and
 *          exits with the kernel's exit code or 128 + its signal, which the zygote reports.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define USAGE 64

static volatile sig_atomic_t init_pid;

static _Noreturn void run_init(void) {
  sigset_t child;
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  sigemptyset(&child);
  sigaddset(&child, SIGCHLD);
  sigprocmask(SIG_BLOCK, &child, NULL);
  for (;;) {
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    sigwaitinfo(&child, NULL);
  }
}

static void end_session(int signal_number) {
  (void)signal_number;
  kill(init_pid, SIGKILL);
}

static int run_watch(pid_t init, pid_t kernel) {
  struct sigaction action;
  sigset_t term;
  int kernel_status = 0;
  int kernel_done = 0;
  int init_done = 0;
  init_pid = init;
  memset(&action, 0, sizeof action);
  action.sa_handler = end_session;
  sigaction(SIGTERM, &action, NULL);
  /* The zygote blocked SIGTERM before exec so that none is lost before the handler exists. */
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigprocmask(SIG_UNBLOCK, &term, NULL);
  while (!kernel_done || !init_done) {
    int status;
    pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (pid == kernel) {
      kernel_status = status;
      kernel_done = 1;
      kill(init, SIGKILL);
    } else if (pid == init) {
      init_done = 1;
    }
  }
  if (!kernel_done) return 128 + SIGKILL;
  return WIFSIGNALED(kernel_status) ? 128 + WTERMSIG(kernel_status) : WEXITSTATUS(kernel_status);
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "init") == 0) run_init();
  if (argc == 4 && strcmp(argv[1], "watch") == 0) return run_watch(atoi(argv[2]), atoi(argv[3]));
  return USAGE;
}
