#pragma once
// The unit-test binary's one MPI context (one rank: MPI_COMM_WORLD of size 1), for code that takes an MpiContext.
#include "s2crop/parallel/mpi.hpp"

const s2crop::parallel::MpiContext& unit_test_mpi();
