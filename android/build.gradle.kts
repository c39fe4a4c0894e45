// Plugin versions for the `:ikelink` library module. An app that includes the module uses its own.
plugins {
    id("com.android.library") version "8.5.2" apply false
    id("org.jetbrains.kotlin.android") version "2.0.21" apply false
}
