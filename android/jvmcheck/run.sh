#!/usr/bin/env bash
# Type-checks the Android shell on a plain JVM (no Android SDK) and runs its JVM tests (ShellJvmTest).
# The few Android and kotlinx.coroutines classes it uses are stand-ins here (android-stubs/, coroutines-stubs/,
# written from the SDK's signatures): this is a compile check against them plus the generated bindings, JNA and
# JUnit 4, not an Android build.
#   KOTLINC=/path/to/kotlinc android/jvmcheck/run.sh
# Needs kotlinc 2.x (KOTLINC, or on PATH), a JDK 17, and the JNA and JUnit 4 jars (Debian: libjna-java, junit4;
# or JNA_JAR, JUNIT_JAR, HAMCREST_JAR).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
kotlinc=${KOTLINC:-kotlinc}
jna=${JNA_JAR:-/usr/share/java/jna.jar}
junit=${JUNIT_JAR:-/usr/share/java/junit4.jar}
hamcrest=${HAMCREST_JAR:-/usr/share/java/hamcrest-core.jar}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/stubs"
javac -d "$work/stubs" $(find "$here/android-stubs" -name '*.java')
cp "$root/bindings/generated/kotlin/uniffi/ikelink_ffi/ikelink_ffi.kt" "$work/ikelink_ffi.kt"
cp="$jna:$work/stubs:$junit:$hamcrest"
"$kotlinc" -cp "$cp" "$work/ikelink_ffi.kt" "$here/coroutines-stubs/flow.kt" \
  $(find "$root/android/ikelink/src" -name '*.kt') -d "$work/shell.jar"
stdlib="$(dirname "$(readlink -f "$(command -v "$kotlinc")")")/../lib/kotlin-stdlib.jar"
java -cp "$cp:$work/shell.jar:$stdlib" org.junit.runner.JUnitCore dev.ikelink.android.ShellJvmTest
