#include <mlm/mlm.hpp>
#include <doctest/doctest.h>
TEST_CASE("the umbrella header compiles on its own") { CHECK(mlm::ModelConfig{}.dim == 256); }
