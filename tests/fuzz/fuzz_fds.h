/* SPDX-License-Identifier: MIT */
/* Fd counting for the harnesses' "no fd leaks" checks. */
#ifndef IVL_FUZZ_FDS_H
#define IVL_FUZZ_FDS_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"

/* Open fds of this process (for "no fd leaks" checks). */
static inline int fuzz_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	FUZZ_CHECK(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory itself */
}

#endif
