/* Public API: the library's version. HERD_VERSION_STRING and HERD_GIT_DESCRIBE come from
 * $(BUILD)/gen/version.h, which the Makefile writes from the VERSION file and `git describe` of the
 * source tree (empty when it is not a git checkout: a tarball, or a tree inside someone else's repo). */
#include "herd.h"
#include "version.h"

const char *herd_version(void) {
    return HERD_VERSION_STRING;
}

const char *herd_version_git(void) {
    return HERD_GIT_DESCRIBE;
}
