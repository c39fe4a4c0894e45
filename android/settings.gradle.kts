// Gradle settings for the Ikelink Android shell: one library module, `:ikelink`.
// Open `android/` in Android Studio, or include `:ikelink` from your app's settings (see README.md).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "ikelink-android"
include(":ikelink")
