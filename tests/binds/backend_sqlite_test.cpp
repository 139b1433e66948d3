// Tests of this backend land with its implementation.
#include <gtest/gtest.h>
