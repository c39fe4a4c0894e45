package android.security;
public class KeyChainException extends Exception {}
